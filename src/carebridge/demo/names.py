"""Realistic Chinese demo data: regions, hospitals, departments, practitioners, patients.

Everything here is pure: data tables and functions of a ``random.Random`` (and, where dates matter,
``today``), so one seed gives the same names, ID numbers and licence numbers on every run. Nothing here
touches the database.

Sources: region codes from GB/T 2260 (current county-level codes); department codes from the former
Ministry of Health's 《医疗机构诊疗科目名录》 (1994, with the 2007 and 2009 additions); resident ID
numbers per GB 11643-1999 (check character by ISO 7064 MOD 11-2).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

# --------------------------------------------------------------------------------------------------- regions


@dataclass(frozen=True)
class RegionSpec:
    code: str
    name: str
    parent_code: str | None


@dataclass(frozen=True)
class District:
    """A county-level division where hospitals are and patients are registered."""

    code: str
    name: str  # 朝阳区
    city: str  # 北京 (without 市), used in hospital names
    city_code: str  # 110000 for a municipality, 440100 for 广州市
    province_name: str  # 北京市 / 广东省
    province_code: str
    area_code: str  # telephone area code: 010, 0755


# GB/T 2260, one row per city: province code and name, city code (None for a municipality, whose districts
# hang directly off the province), city name as used in hospital names, telephone area code, districts.
# fmt: off
_GBT2260: tuple[tuple[str, str, str | None, str, str, str], ...] = (
    ("110000", "北京市", None,     "北京", "010",
     "110101 东城区 110102 西城区 110105 朝阳区 110106 丰台区 110108 海淀区"),
    ("310000", "上海市", None,     "上海", "021",
     "310101 黄浦区 310104 徐汇区 310105 长宁区 310106 静安区 310115 浦东新区"),
    ("440000", "广东省", "440100", "广州", "020",
     "440103 荔湾区 440104 越秀区 440105 海珠区 440106 天河区"),
    ("440000", "广东省", "440300", "深圳", "0755",
     "440303 罗湖区 440304 福田区 440305 南山区 440306 宝安区"),
    ("510000", "四川省", "510100", "成都", "028",
     "510104 锦江区 510105 青羊区 510106 金牛区 510107 武侯区 510108 成华区"),
    ("330000", "浙江省", "330100", "杭州", "0571",
     "330102 上城区 330105 拱墅区 330106 西湖区 330108 滨江区"),
    ("420000", "湖北省", "420100", "武汉", "027",
     "420102 江岸区 420103 江汉区 420106 武昌区 420111 洪山区"),
    ("320000", "江苏省", "320100", "南京", "025",
     "320102 玄武区 320104 秦淮区 320105 建邺区 320106 鼓楼区"),
    ("500000", "重庆市", None,     "重庆", "023",
     "500103 渝中区 500105 江北区 500106 沙坪坝区 500107 九龙坡区"),
    ("120000", "天津市", None,     "天津", "022",
     "120101 和平区 120102 河东区 120103 河西区 120104 南开区"),
)
# fmt: on


def _pairs(text: str) -> list[tuple[str, str]]:
    words = text.split()
    return list(zip(words[::2], words[1::2], strict=True))


def regions() -> list[RegionSpec]:
    """Every region row, parents before children."""
    out: list[RegionSpec] = []
    for prov_code, prov_name, city_code, city, _area, districts_ in _GBT2260:
        if not any(r.code == prov_code for r in out):
            out.append(RegionSpec(prov_code, prov_name, None))
        if city_code is not None:
            out.append(RegionSpec(city_code, f"{city}市", prov_code))
        out.extend(RegionSpec(code, name, city_code or prov_code) for code, name in _pairs(districts_))
    return out


def districts() -> list[District]:
    return [
        District(code, name, city, city_code or prov_code, prov_name, prov_code, area)
        for prov_code, prov_name, city_code, city, area, districts_ in _GBT2260
        for code, name in _pairs(districts_)
    ]


def cities() -> list[list[District]]:
    """Districts grouped by city, in table order (Beijing first)."""
    groups: dict[str, list[District]] = {}
    for d in districts():
        groups.setdefault(d.city_code, []).append(d)
    return list(groups.values())


def province_code(region_code: str) -> str:
    return region_code[:2] + "0000"


# ------------------------------------------------------------------------------------- resident ID numbers

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)  # 2**(17-i) mod 11
_ID_CHECK = "10X98765432"  # indexed by the weighted sum mod 11


def id_check_char(first17: str) -> str:
    """The 18th character of a resident ID number (GB 11643, ISO 7064 MOD 11-2)."""
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError("the first 17 characters of an ID number are digits")
    total = sum(int(c) * w for c, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def is_valid_id_number(value: str) -> bool:
    if len(value) != 18 or not value[:17].isdigit():
        return False
    try:
        date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    return id_check_char(value[:17]) == value[17].upper()


def make_id_number(region: str, birth_date: date, sex: str, rng: random.Random) -> str:
    """An 18-character resident ID number.

    Region, birth date, a 3-digit sequence (last digit odd for men, even for women), check character.
    """
    if len(region) != 6 or not region.isdigit():
        raise ValueError("region must be a 6-digit GB/T 2260 code")
    seq = rng.randrange(1, 1000, 2) if sex == "male" else rng.randrange(2, 1000, 2)
    first17 = f"{region}{birth_date:%Y%m%d}{seq:03d}"
    return first17 + id_check_char(first17)


def sex_of_id_number(value: str) -> str:
    return "male" if int(value[16]) % 2 else "female"


# ------------------------------------------------------------------------------------------------- people

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
    "姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
# The common surnames are much more common: the first 20 cover about half of the population.
_SURNAME_WEIGHTS = tuple(6 if i < 10 else 3 if i < 20 else 1 for i in range(len(SURNAMES)))
COMPOUND_SURNAMES = ("欧阳", "司马", "诸葛", "上官", "东方")
_MALE_CHARS = "伟强磊军洋勇杰涛明超刚平辉鹏华飞鑫波斌宇浩凯健俊帆帅旭宁龙林峰建国文志海东晨博轩然睿哲铭诚"
_FEMALE_CHARS = "芳娜敏静丽艳娟霞秀燕玲婷雪慧莹倩琳晶颖洁佳欣怡悦萱璐雯梅兰红薇蕾月婧瑶涵彤妍琪诺"
_COMMON_CHARS = "晓小丹雨思嘉子一安宇文春秋新志梓欣雅佳家"


def person_name(rng: random.Random, sex: str) -> str:
    if rng.random() < 0.01:
        surname = rng.choice(COMPOUND_SURNAMES)
    else:
        surname = rng.choices(SURNAMES, weights=_SURNAME_WEIGHTS)[0]
    own = _MALE_CHARS if sex == "male" else _FEMALE_CHARS
    if rng.random() < 0.35:
        return surname + rng.choice(own)
    first = rng.choice(_COMMON_CHARS) if rng.random() < 0.4 else rng.choice(own)
    second = rng.choice(own)
    while second == first:
        second = rng.choice(own)
    return surname + first + second


def sex(rng: random.Random) -> str:
    return "male" if rng.random() < 0.5 else "female"


_MOBILE_PREFIXES = tuple(
    (
        "130 131 132 133 135 136 137 138 139 150 151 152 153 155 156 157 158 159 170 "
        "173 175 176 177 178 180 181 182 183 185 186 187 188 189 191 193 195 198 199"
    ).split()
)


def mobile_phone(rng: random.Random) -> str:
    return rng.choice(_MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"


def birth_date_for_age(rng: random.Random, today: date, min_age: int, max_age: int) -> date:
    """A birth date giving an age in [min_age, max_age] on ``today``."""
    latest = _years_before(today, min_age)
    earliest = _years_before(today, max_age + 1) + timedelta(days=1)
    return earliest + timedelta(days=rng.randrange((latest - earliest).days + 1))


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


@dataclass(frozen=True)
class PatientSpec:
    name: str
    sex: str
    birth_date: date
    region: str
    id_number: str
    phone: str


def make_patient(
    rng: random.Random,
    today: date,
    used_id_numbers: set[str],
    *,
    min_age: int = 1,
    max_age: int = 90,
    sex_: str | None = None,
    surname: str | None = None,
    phone: str | None = None,
    region: str | None = None,
) -> PatientSpec:
    """A patient with a valid, unused ID number; ages weighted towards adults, as outpatients are."""
    s = sex_ or sex(rng)
    if min_age <= 18 <= max_age and rng.random() < 0.8:
        birth = birth_date_for_age(rng, today, max(min_age, 18), max_age)
    else:
        birth = birth_date_for_age(rng, today, min_age, max_age)
    reg = region or rng.choice(_DISTRICT_CODES)
    while True:
        id_number = make_id_number(reg, birth, s, rng)
        if id_number not in used_id_numbers:
            used_id_numbers.add(id_number)
            break
    name = person_name(rng, s)
    if surname is not None:
        name = surname + name[len(_surname_of(name)) :]
    return PatientSpec(name, s, birth, reg, id_number, phone or mobile_phone(rng))


def _surname_of(name: str) -> str:
    return name[:2] if name[:2] in COMPOUND_SURNAMES else name[:1]


_DISTRICT_CODES = tuple(d.code for d in districts())


# -------------------------------------------------------------------------------------------- departments


@dataclass(frozen=True)
class DepartmentSpec:
    standard_code: str  # 《医疗机构诊疗科目名录》 code
    name: str  # the name patients see
    specialties: tuple[str, ...]  # what a practitioner of this department is good at (擅长)


_D = DepartmentSpec
DEPARTMENTS: dict[str, DepartmentSpec] = {
    d.name: d
    for d in (
        _D("01", "预防保健科", ("预防接种、健康体检", "慢性病管理、健康教育")),
        _D("02", "全科医疗科", ("常见病、多发病诊治", "高血压、糖尿病慢病管理", "家庭医生签约服务")),
        _D("03", "普通内科", ("发热、咳嗽等常见内科疾病", "内科疑难杂症")),
        _D("03.01", "呼吸内科", ("慢性阻塞性肺疾病、哮喘", "肺部感染、肺结节", "慢性咳嗽、睡眠呼吸暂停")),
        _D("03.02", "消化内科", ("胃炎、消化性溃疡", "肝病、脂肪肝", "胃肠镜检查与治疗", "炎症性肠病")),
        _D("03.03", "神经内科", ("脑血管病、头痛", "癫痫、帕金森病", "失眠、头晕")),
        _D("03.04", "心血管内科", ("高血压、冠心病", "心律失常、心力衰竭", "血脂异常、心脏介入")),
        _D("03.05", "血液内科", ("贫血、血小板减少", "白血病、淋巴瘤")),
        _D("03.06", "肾内科", ("慢性肾脏病、肾小球肾炎", "血液透析、腹膜透析")),
        _D("03.07", "内分泌科", ("糖尿病、甲状腺疾病", "骨质疏松、肥胖", "痛风、高尿酸血症")),
        _D("03.08", "风湿免疫科", ("类风湿关节炎、强直性脊柱炎", "系统性红斑狼疮、干燥综合征")),
        _D("03.10", "老年病科", ("老年多病共存管理", "老年认知障碍")),
        _D("04.01", "普通外科", ("甲状腺、乳腺疾病", "疝、胆囊结石", "胃肠肿瘤微创手术")),
        _D("04.02", "神经外科", ("脑肿瘤、颅脑外伤", "脑血管病介入")),
        _D("04.03", "骨科", ("骨折、创伤", "关节置换、运动损伤", "颈椎病、腰椎间盘突出")),
        _D("04.04", "泌尿外科", ("泌尿系结石", "前列腺增生、泌尿系肿瘤")),
        _D("04.05", "胸外科", ("肺结节、肺癌微创手术", "食管疾病")),
        _D("05.01", "妇科", ("月经不调、妇科炎症", "子宫肌瘤、卵巢囊肿", "宫颈疾病筛查")),
        _D("05.02", "产科", ("孕期保健、高危妊娠", "产前检查与分娩")),
        _D("05.05", "生殖医学科", ("不孕不育", "辅助生殖技术")),
        _D("06", "妇女保健科", ("青春期与更年期保健", "妇女常见病筛查")),
        _D("07", "儿科", ("小儿发热、咳嗽", "小儿腹泻、营养不良", "儿童常见病")),
        _D("07.01", "新生儿科", ("新生儿黄疸", "早产儿随访")),
        _D("07.03", "小儿消化科", ("小儿腹泻、便秘", "小儿厌食")),
        _D("07.04", "小儿呼吸科", ("小儿哮喘、肺炎", "反复呼吸道感染")),
        _D("07.05", "小儿心脏科", ("先天性心脏病", "小儿心肌炎")),
        _D("07.08", "小儿神经科", ("小儿癫痫、抽动症", "儿童发育迟缓")),
        _D("07.09", "小儿内分泌科", ("儿童矮小、性早熟", "儿童糖尿病")),
        _D("08", "小儿外科", ("小儿疝气、包茎", "小儿骨折")),
        _D("09", "儿童保健科", ("儿童生长发育评估", "儿童营养与喂养")),
        _D("10", "眼科", ("白内障、青光眼", "屈光不正、近视防控", "眼底病")),
        _D("11", "耳鼻咽喉科", ("鼻炎、鼻窦炎", "中耳炎、听力下降", "咽喉疾病")),
        _D("12", "口腔科", ("龋齿、牙髓病", "牙周病、口腔修复", "口腔正畸")),
        _D("13", "皮肤科", ("湿疹、荨麻疹", "痤疮、银屑病", "皮肤过敏")),
        _D("15", "精神心理科", ("抑郁症、焦虑症", "睡眠障碍、心理咨询")),
        _D("19", "肿瘤科", ("肺癌、乳腺癌综合治疗", "肿瘤化疗与靶向治疗")),
        _D("21", "康复医学科", ("脑卒中康复", "骨关节术后康复", "颈肩腰腿痛")),
        _D("50", "中医科", ("中医调理、亚健康", "脾胃病、失眠")),
        _D("50.01", "中医内科", ("脾胃病、失眠", "咳喘、中医体质调理")),
        _D("50.03", "中医妇科", ("月经不调、痛经", "更年期综合征")),
        _D("50.04", "中医儿科", ("小儿厌食、积滞", "小儿反复感冒")),
        _D("50.05", "中医皮肤科", ("湿疹、痤疮中医治疗",)),
        _D("50.10", "骨伤科", ("颈肩腰腿痛", "骨折中医正骨")),
        _D("50.11", "肛肠科", ("痔疮、肛裂", "肛瘘")),
        _D("50.13", "针灸科", ("针灸治疗面瘫、中风后遗症", "针灸减重、颈腰椎病")),
        _D("50.14", "推拿科", ("颈椎病、腰肌劳损推拿", "小儿推拿")),
        _D("52", "中西医结合科", ("中西医结合治疗慢性病", "肿瘤中西医结合治疗")),
    )
}

# Which departments a kind of hospital has: (always, then optional ones in order of preference).
_DEPARTMENT_PLANS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "general": (
        ("心血管内科", "呼吸内科", "消化内科", "普通外科"),
        (
            "神经内科",
            "内分泌科",
            "骨科",
            "儿科",
            "妇科",
            "眼科",
            "耳鼻咽喉科",
            "口腔科",
            "皮肤科",
            "肾内科",
            "泌尿外科",
            "产科",
            "中医科",
            "风湿免疫科",
            "血液内科",
            "肿瘤科",
            "康复医学科",
            "精神心理科",
            "胸外科",
            "神经外科",
            "老年病科",
        ),
    ),
    "tcm": (
        ("中医内科", "针灸科", "骨伤科"),
        (
            "推拿科",
            "中医妇科",
            "中医儿科",
            "中医皮肤科",
            "肛肠科",
            "中西医结合科",
            "心血管内科",
            "康复医学科",
            "消化内科",
        ),
    ),
    "maternal_child": (
        ("妇科", "产科", "儿科"),
        ("新生儿科", "儿童保健科", "妇女保健科", "生殖医学科", "小儿呼吸科", "小儿消化科", "中医儿科"),
    ),
    "children": (
        ("儿科", "小儿呼吸科", "小儿消化科"),
        (
            "新生儿科",
            "小儿心脏科",
            "小儿神经科",
            "小儿内分泌科",
            "小儿外科",
            "儿童保健科",
            "眼科",
            "耳鼻咽喉科",
            "口腔科",
            "皮肤科",
        ),
    ),
    "community": (
        ("全科医疗科", "普通内科"),
        ("中医科", "预防保健科", "口腔科", "康复医学科", "儿科"),
    ),
}

_DEPARTMENT_COUNTS = {"primary": (4, 5), "secondary": (6, 8), "tertiary": (8, 10)}


def department_plan(rng: random.Random, kind: str, level: str) -> list[DepartmentSpec]:
    """4-10 departments for a hospital of this kind and level: the core ones, then a random pick."""
    always, optional = _DEPARTMENT_PLANS[kind]
    low, high = _DEPARTMENT_COUNTS[level]
    count = min(rng.randint(low, high), len(always) + len(optional))
    extra = rng.sample(optional, count - len(always)) if count > len(always) else []
    return [DEPARTMENTS[name] for name in (*always, *extra)]


# --------------------------------------------------------------------------------------------- hospitals

_CHINESE_DIGITS = "零一二三四五六七八九"


def chinese_number(n: int) -> str:
    """1 -> 一, 10 -> 十, 21 -> 二十一, 105 -> 一百零五 (for ordinals in hospital names)."""
    if not 0 < n < 1000:
        raise ValueError("1..999 only")
    hundreds, rest = divmod(n, 100)
    tens, ones = divmod(rest, 10)
    out = ""
    if hundreds:
        out += _CHINESE_DIGITS[hundreds] + "百"
        if rest and tens == 0:
            out += "零"
    if tens:
        out += ("" if tens == 1 and not hundreds else _CHINESE_DIGITS[tens]) + "十"
    if ones:
        out += _CHINESE_DIGITS[ones]
    return out


_UNIVERSITIES: dict[str, tuple[str, ...]] = {
    "北京": ("北京大学", "首都医科大学"),
    "上海": ("复旦大学", "上海交通大学医学院"),
    "广州": ("中山大学", "南方医科大学", "广州医科大学"),
    "深圳": ("深圳大学",),
    "成都": ("四川大学", "成都医学院", "成都中医药大学"),
    "杭州": ("浙江大学医学院", "浙江中医药大学"),
    "武汉": ("武汉大学", "华中科技大学同济医学院"),
    "南京": ("南京医科大学", "东南大学"),
    "重庆": ("重庆医科大学",),
    "天津": ("天津医科大学",),
}
_STREETS = tuple(
    ("新华 建设 和平 光明 幸福 人民 解放 胜利 长青 东风 红星 朝阳 新城 南湖 北苑 西园 东湖 滨河 春华 金桥").split()
)
_ROADS = tuple(
    (
        "中山路 人民路 解放路 建设路 长江路 和平路 友谊路 新华路 胜利路 青年路 "
        "文化路 健康路 学府路 滨江路 东风路 朝阳路 光华路 南京路 黄河路 育才路"
    ).split()
)

# kind -> weight among randomly drawn hospitals (the demo's first hospital is always a city 第一人民医院)
_HOSPITAL_KINDS = (
    ("city_people", 10),
    ("district_people", 15),
    ("tcm", 12),
    ("maternal_child", 10),
    ("children", 3),
    ("university", 10),
    ("central", 5),
    ("community", 25),
    ("private", 12),
)
# Names of privately run hospitals (民营医院): {city}{brand}医院 or {city}{district}{brand}医院.
_PRIVATE_BRANDS = tuple(
    ("仁爱 博爱 康华 德济 安康 华信 长安 同济 仁和 济民 瑞康 慈铭 普仁 泰康 和美 新安 恒康 惠民 明德 天佑").split()
)


@dataclass(frozen=True)
class HospitalSpec:
    name: str
    short_name: str
    kind: str  # general | tcm | maternal_child | children | community (which departments it has)
    level: str  # HospitalLevel value
    district: District
    licence_number: str
    licence_expires_on: date
    is_internet_hospital: bool
    address: str
    phone: str


def _strip_district(name: str) -> str:
    """浦东新区 -> 浦东, 朝阳区 -> 朝阳 (as in 朝阳院区)."""
    for suffix in ("新区", "区"):
        if name.endswith(suffix) and len(name) > len(suffix) + 1:
            return name[: -len(suffix)]
    return name


def address(rng: random.Random, district: District) -> str:
    city = "" if district.city_code == district.province_code else f"{district.city}市"
    return f"{district.province_name}{city}{district.name}{rng.choice(_ROADS)}{rng.randint(1, 399)}号"


def switchboard(rng: random.Random, district: District) -> str:
    """A landline in the district's area code: 010-6xxxxxxx (8-digit local numbers in these cities)."""
    return f"{district.area_code}-{rng.choice('5678')}{rng.randrange(10**7):07d}"


def make_hospitals(rng: random.Random, count: int, today: date) -> list[HospitalSpec]:
    """``count`` hospitals with unique names and licence numbers, spread over the cities.

    Hospitals go to cities two at a time (the first two in Beijing, so a regulator there sees more than one),
    cycling when the cities run out. A name already taken falls back to the next ``第N人民医院`` of the city,
    which is unique by construction, so any ``count`` works.
    """
    city_groups = cities()
    used: set[str] = set()
    next_ordinal: dict[str, int] = {}
    out: list[HospitalSpec] = []
    kinds, weights = zip(*_HOSPITAL_KINDS, strict=True)
    for index in range(count):
        group = city_groups[(index // 2) % len(city_groups)]
        district = rng.choice(group)
        kind = "city_people" if index == 0 else rng.choices(kinds, weights=weights)[0]
        name, short, dept_kind, level = _hospital_name(rng, kind, district, used, next_ordinal)
        used.add(name)
        out.append(
            HospitalSpec(
                name=name,
                short_name=short,
                kind=dept_kind,
                level=level,
                district=district,
                licence_number=f"PDY{index + 1:05d}{district.code}{rng.randrange(10, 100)}A1001",
                licence_expires_on=today + timedelta(days=rng.randint(180, 5 * 365)),
                is_internet_hospital=index < 5 or rng.random() < 0.85,
                address=address(rng, district),
                phone=switchboard(rng, district),
            )
        )
    return out


def _next_people_hospital(district: District, used: set[str], next_ordinal: dict[str, int]) -> tuple[str, int]:
    n = next_ordinal.get(district.city, 1)
    while f"{district.city}市第{chinese_number(n)}人民医院" in used:
        n += 1
    next_ordinal[district.city] = n + 1
    return f"{district.city}市第{chinese_number(n)}人民医院", n


def _hospital_name(
    rng: random.Random, kind: str, d: District, used: set[str], next_ordinal: dict[str, int]
) -> tuple[str, str, str, str]:
    """(name, short name, department plan, level) for a hospital of ``kind`` in district ``d``."""
    city, dist = d.city, d.name
    candidates: list[tuple[str, str, str, str]] = []
    if kind == "district_people":
        candidates.append((f"{city}市{dist}人民医院", f"{_strip_district(dist)}区医院", "general", "secondary"))
    elif kind == "tcm":
        candidates += [
            (f"{city}市中医医院", f"{city}中医院", "tcm", "tertiary"),
            (f"{city}市{dist}中医医院", f"{_strip_district(dist)}中医院", "tcm", "secondary"),
        ]
        rng.shuffle(candidates)
    elif kind == "maternal_child":
        candidates += [
            (f"{city}市妇幼保健院", f"{city}妇幼", "maternal_child", "tertiary"),
            (f"{city}市{dist}妇幼保健院", f"{_strip_district(dist)}妇幼", "maternal_child", "secondary"),
        ]
        rng.shuffle(candidates)
    elif kind == "children":
        candidates.append((f"{city}市儿童医院", f"{city}儿童医院", "children", "tertiary"))
    elif kind == "university":
        university = rng.choice(_UNIVERSITIES[city])
        n = rng.randint(1, 6)
        candidates.append(
            (
                f"{university}附属第{chinese_number(n)}医院",
                f"{university[:2]}附{chinese_number(n)}院",
                "general",
                "tertiary",
            )
        )
    elif kind == "central":
        candidates += [
            (f"{city}市中心医院", f"{city}中心医院", "general", "tertiary"),
            (f"{city}市{dist}中心医院", f"{_strip_district(dist)}中心医院", "general", "secondary"),
        ]
    elif kind == "community":
        street = rng.choice(_STREETS)
        candidates.append(
            (
                f"{city}市{dist}{street}街道社区卫生服务中心",
                f"{street}社区卫生服务中心",
                "community",
                "primary",
            )
        )
    # Taken (or a private hospital): try a few private hospital names before numbering people's hospitals.
    for _ in range(3 if kind != "city_people" else 0):
        brand = rng.choice(_PRIVATE_BRANDS)
        if rng.random() < 0.3:
            candidates.append((f"{city}{brand}医院", f"{brand}医院", "general", "secondary"))
        else:
            short = f"{_strip_district(dist)}{brand}医院"
            candidates.append((f"{city}{short}", short, "general", rng.choice(("primary", "secondary"))))
    for candidate in candidates:
        if candidate[0] not in used:
            return candidate
    name, n = _next_people_hospital(d, used, next_ordinal)
    return name, f"{city}市{chinese_number(n)}院", "general", "tertiary" if n <= 3 else "secondary"


def campus_names(rng: random.Random, hospital: HospitalSpec) -> list[tuple[str, District]]:
    """One campus, or for a secondary or tertiary hospital sometimes a second one in another district."""
    main = [("本部", hospital.district)]
    if hospital.level == "primary" or rng.random() < 0.6:
        return main
    others = [d for d in districts() if d.city_code == hospital.district.city_code and d != hospital.district]
    other = rng.choice(others)
    return [*main, (f"{_strip_district(other.name)}院区", other)]


# ------------------------------------------------------------------------------------------- practitioners

TITLE_NAMES = {
    "chief_physician": "主任医师",
    "associate_chief_physician": "副主任医师",
    "attending_physician": "主治医师",
    "resident_physician": "住院医师",
    "chief_pharmacist": "主任药师",
    "pharmacist": "药师",
}
_TITLE_WEIGHTS = {
    "tertiary": (20, 30, 30, 20),
    "secondary": (8, 22, 40, 30),
    "primary": (2, 13, 45, 40),
}
_PHYSICIAN_TITLES = (
    "chief_physician",
    "associate_chief_physician",
    "attending_physician",
    "resident_physician",
)
# Years of independent practice by title (low, high).
_PRACTICE_YEARS = {
    "chief_physician": (18, 35),
    "associate_chief_physician": (12, 25),
    "attending_physician": (5, 15),
    "resident_physician": (3, 6),
}
JUNIOR_SHARE = 0.2  # share of residents who began practising less than three years ago (rule R3)


@dataclass(frozen=True)
class PractitionerSpec:
    name: str
    sex: str
    title: str
    specialty: str
    licence_number: str
    practice_started_on: date
    introduction: str


def practitioner_licence_number(serial: int, category: str, region: str) -> str:
    """A 15-digit 医师执业证书编码: level 1 (执业医师), category, the issuing region, a 7-digit serial."""
    number = f"1{category}{region}{serial:07d}"
    assert len(number) == 15
    return number


def _licence_category(department: DepartmentSpec) -> str:
    if department.standard_code.startswith(("50", "52")):
        return "2"  # 中医
    if department.standard_code.startswith("12"):
        return "3"  # 口腔
    if department.standard_code.startswith("01"):
        return "4"  # 公共卫生
    return "1"  # 临床


def make_practitioner(
    rng: random.Random,
    department: DepartmentSpec,
    level: str,
    region: str,
    serial: int,
    today: date,
    *,
    title: str | None = None,
    junior: bool | None = None,
) -> PractitionerSpec:
    """A physician of ``department``; ``junior`` (default: sometimes, for residents) means under 3 years."""
    s = sex(rng)
    title = title or rng.choices(_PHYSICIAN_TITLES, weights=_TITLE_WEIGHTS[level])[0]
    if junior is None:
        junior = title == "resident_physician" and rng.random() < JUNIOR_SHARE
    if junior:
        started = today - timedelta(days=rng.randint(120, 3 * 365 - 30))
    else:
        low, high = _PRACTICE_YEARS[title]
        started = today - timedelta(days=rng.randint(low * 365 + 30, high * 365))
    years = max(1, (today - started).days // 365)
    name = person_name(rng, s)
    specialty = rng.choice(department.specialties)
    intro = f"{name}，{TITLE_NAMES[title]}，从事{department.name}临床工作{years}年，擅长{specialty}。"
    return PractitionerSpec(
        name=name,
        sex=s,
        title=title,
        specialty=specialty,
        licence_number=practitioner_licence_number(serial, _licence_category(department), region),
        practice_started_on=started,
        introduction=intro,
    )


def make_pharmacist(rng: random.Random, region: str, serial: int, today: date) -> PractitionerSpec:
    s = sex(rng)
    name = person_name(rng, s)
    return PractitionerSpec(
        name=name,
        sex=s,
        title="pharmacist",
        specialty="临床药学、处方审核",
        # 药师 have no physician licence; a 执业药师 registration number, shaped like the physician's.
        licence_number=f"YS{region}{serial:07d}",
        practice_started_on=today - timedelta(days=rng.randint(5 * 365, 15 * 365)),
        introduction=f"{name}，药师，从事处方审核与用药咨询工作。",
    )


# ----------------------------------------------------------------------------------- visits and schedules

# (code, name, fee range in fen by hospital level)
VISIT_TYPES: tuple[tuple[str, str, dict[str, tuple[int, int]]], ...] = (
    ("ordinary", "普通门诊", {"primary": (500, 800), "secondary": (800, 1200), "tertiary": (1000, 1500)}),
    ("expert", "专家门诊", {"primary": (2500, 3000), "secondary": (2500, 4000), "tertiary": (3000, 5000)}),
    ("special_needs", "特需门诊", {"tertiary": (10000, 30000)}),
)


def visit_fee(rng: random.Random, low: int, high: int) -> int:
    """A fee in fen, rounded as hospitals price them (whole yuan; 5 yuan steps above 20 yuan)."""
    step = 500 if low >= 2000 else 100
    return rng.randrange(low // step, high // step + 1) * step


def weekly_sessions(rng: random.Random, count: int, taken: Sequence[tuple[int, str]] = ()) -> list[tuple[int, str]]:
    """``count`` distinct (weekday, session) pairs, Monday-Saturday, avoiding ``taken``."""
    choices = [(wd, s) for wd in range(6) for s in ("morning", "afternoon") if (wd, s) not in taken]
    weights = [1 if wd == 5 else 4 for wd, _ in choices]  # Saturday clinics are rarer
    picked: list[tuple[int, str]] = []
    while len(picked) < count and choices:
        i = rng.choices(range(len(choices)), weights=weights)[0]
        picked.append(choices.pop(i))
        weights.pop(i)
    return sorted(picked)


def slot_pools(rng: random.Random, visit_type: str) -> dict[str, int]:
    """Places per slot and channel: experts see fewer patients per half hour; some keep one for referrals."""
    pools = {"platform": 2, "onsite": 1} if visit_type != "ordinary" else {"platform": 3, "onsite": 2}
    if rng.random() < 0.25:
        pools["referral"] = 1
    return pools
