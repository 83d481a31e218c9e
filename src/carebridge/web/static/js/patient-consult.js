/* Patient online follow-up visits: my consultations, and the request form (patient, internet hospital, doctor
   filed there, the offline diagnosis it follows up, the pre-consultation form). */
(function () {
  'use strict';
  var CB = window.CB;
  var h = CB.h;

  var STATUS = {
    requested: ['待接诊 Waiting', 'brand'], accepted: ['已接诊 Accepted', 'ok'], in_progress: ['问诊中 In progress', 'ok'],
    closed: ['已结束 Closed', ''], rejected: ['医生未接诊 Declined', 'danger'], expired: ['已过期 Expired', 'warn'],
    cancelled: ['已取消 Cancelled', 'danger']
  };
  var KIND = { text: '图文问诊 Text', video: '视频问诊 Video' };
  var RELATION = { self: '本人 Self', child: '子女 Child', parent: '父母 Parent', spouse: '配偶 Spouse', other: '其他 Other' };
  // Refusals of this page's requests, Chinese first; unknown codes fall back to CB.showError.
  var ERRORS = {
    first_visit_not_online: '互联网医院不提供首诊：请先选择或添加线下诊断 Online visits follow up a diagnosis made in person: choose or add one',
    practitioner_not_eligible: '该医生暂不能提供在线复诊 This doctor cannot consult online',
    practitioner_not_filed: '该医生未在此互联网医院备案 This doctor is not filed at this internet hospital',
    not_an_internet_hospital: '该医院没有有效的互联网医院资质 This hospital holds no internet-hospital licence',
    guardian_required: '6 岁以下儿童需由监护人账号发起并填写监护人姓名 A child under 6 needs a guardian: give the guardian\'s name',
    consultation_open: '您与该医生已有进行中的问诊 You already have an open consultation with this doctor',
    unknown_icd10_code: 'ICD-10 编码无效 Unknown ICD-10 code',
    future_date: '诊断日期不能晚于今天 The diagnosis date cannot be in the future'
  };

  function showError(err) {
    if (err && ERRORS[err.code]) CB.show('error', ERRORS[err.code] + (err.details && err.details.rule ?
      ' (' + err.details.rule + ')' : ''), err.code);
    else CB.showError(err);
  }
  function statusBadge(status) {
    var s = STATUS[status] || [status, ''];
    return h('span', { class: 'badge ' + s[1], dataset: { status: status } }, s[0]);
  }
  function option(value, text, selected) {
    return h('option', { value: value, selected: selected || false }, text);
  }
  function years(birth, today) {
    var b = birth.split('-').map(Number);
    var t = today.split('-').map(Number);
    return t[0] - b[0] - ((t[1] < b[1] || (t[1] === b[1] && t[2] < b[2])) ? 1 : 0);
  }
  function filedAt(practitioner, hospitalId) {
    return (practitioner.filings || []).filter(function (f) {
      return f.hospital_id === hospitalId && !f.revoked && f.valid_from <= CB.today &&
        (!f.valid_to || f.valid_to >= CB.today);
    }).sort(function (a, b) { return (a.kind === 'main' ? 0 : 1) - (b.kind === 'main' ? 0 : 1); })[0];
  }

  function consultationsPage() {
    var list = CB.$('#consult-list');
    var form = CB.$('#consult-form');
    var patientSelect = CB.$('#c-patient');
    var hospitalSelect = CB.$('#c-hospital');
    var doctorSelect = CB.$('#c-practitioner');
    var diagnosisSelect = CB.$('#c-diagnosis');
    var guardianField = CB.$('#c-guardian-field');
    var params = new URLSearchParams(location.search);
    var wanted = { hospital: params.get('hospital'), practitioner: params.get('practitioner') };
    var patients = [];
    var dxTicket = 0;      // only the latest answer fills a list (a quick change of choice overtakes a slow one)
    var doctorTicket = 0;

    // --- my consultations --------------------------------------------------------------------------------
    function loadList() {
      return CB.get('/api/v1/consultations').then(function (rows) {
        CB.fill(list, rows.length ? rows.map(function (c) {
          return h('li', {}, h('a', { class: 'consult-link list-item', href: '/patient/consultations/' + c.id,
            dataset: { consultationId: c.id, status: c.status } },
          h('div', { class: 'row spread' },
            h('span', { class: 'title' }, [c.practitioner_name, c.department_name].filter(Boolean).join(' · ')),
            statusBadge(c.status)),
          h('div', { class: 'meta' }, c.hospital_name),
          h('div', { class: 'meta' }, [KIND[c.kind] || c.kind, c.patient ? '就诊人 ' + c.patient.name : null,
            CB.fmtDateTime(c.requested_at)].filter(Boolean).join(' · '))));
        }) : h('li', { class: 'empty' }, '暂无问诊 No consultations yet'));
      }).catch(CB.showError);
    }

    // --- the form's choices ----------------------------------------------------------------------------
    function loadPatients() {
      return CB.get('/api/v1/patients').then(function (rows) {
        patients = rows;
        CB.$('#c-patient-hint').hidden = rows.length > 0;
        var chosen = (rows.filter(function (p) { return p.relation === 'self'; })[0] || rows[0] || {}).id;
        CB.fill(patientSelect, rows.length ? rows.map(function (p) {
          return option(p.id, p.name + (p.relation ? ' · ' + (RELATION[p.relation] || p.relation) : ''), p.id === chosen);
        }) : option('', '暂无就诊人 No patients'));
        return patientChanged();
      });
    }
    function currentPatient() {
      return patients.filter(function (p) { return p.id === patientSelect.value; })[0] || null;
    }
    function patientChanged() {
      var p = currentPatient();
      guardianField.hidden = !(p && p.birth_date && CB.today && years(p.birth_date, CB.today) < 6);
      return loadDiagnoses(null);
    }
    function diagnosisText(d) {
      return [d.hospital_name, d.diagnosed_on, d.icd10_code, d.diagnosis].join(' · ');
    }
    function loadDiagnoses(selectId) {
      var p = currentPatient();
      if (!p) {
        CB.fill(diagnosisSelect, option('', '请先选择就诊人 Choose a patient first'));
        diagnosisSelect.disabled = true;
        return Promise.resolve();
      }
      var ticket = ++dxTicket;
      var current = diagnosisSelect.value;
      return CB.get('/api/v1/patients/' + p.id + '/offline-diagnoses').then(function (rows) {
        if (ticket !== dxTicket || p.id !== patientSelect.value) return; // a newer answer is coming
        var has = function (id) { return id && rows.some(function (d) { return d.id === id; }); };
        var chosen = has(selectId) ? selectId : has(current) ? current : rows.length === 1 ? rows[0].id : null;
        CB.fill(diagnosisSelect, rows.length ? [option('', '请选择要复诊的诊断 Choose the diagnosis to follow up', !chosen)]
          .concat(rows.map(function (d) { return option(d.id, diagnosisText(d), d.id === chosen); }))
          : option('', '暂无线下诊断，请在下方添加 None yet: add one below'));
        diagnosisSelect.disabled = false;
      }).catch(showError);
    }

    function loadHospitals() {
      return CB.get('/api/v1/hospitals?internet=true&limit=200').then(function (page) {
        var rows = page.items.filter(function (x) { return x.is_internet_hospital && x.active; });
        var chosen = rows.some(function (x) { return x.id === wanted.hospital; }) ? wanted.hospital : null;
        CB.fill(hospitalSelect, [option('', '请选择医院 Choose a hospital', !chosen)].concat(rows.map(function (x) {
          return option(x.id, x.name, x.id === chosen);
        })));
        return hospitalChanged();
      });
    }
    function hospitalChanged() {
      var hospitalId = hospitalSelect.value;
      var ticket = ++doctorTicket;
      var current = doctorSelect.value;
      if (!hospitalId) {
        doctorSelect.disabled = true;
        CB.fill(doctorSelect, option('', '请先选择医院 Choose a hospital first'));
        return Promise.resolve();
      }
      return Promise.all([
        CB.get('/api/v1/practitioners?limit=200&hospital_id=' + encodeURIComponent(hospitalId)),
        CB.get('/api/v1/hospitals/' + encodeURIComponent(hospitalId) + '/departments')
      ]).then(function (answers) {
        if (ticket !== doctorTicket || hospitalId !== hospitalSelect.value) return;
        var departments = {};
        answers[1].forEach(function (d) { departments[d.id] = d.name; });
        var rows = answers[0].items.map(function (p) { return { p: p, filing: filedAt(p, hospitalId) }; })
          .filter(function (x) { return x.filing; });
        rows.sort(function (a, b) {
          var da = departments[a.filing.department_id] || '';
          var db = departments[b.filing.department_id] || '';
          return da === db ? a.p.name.localeCompare(b.p.name, 'zh') : da.localeCompare(db, 'zh');
        });
        var has = function (id) { return id && rows.some(function (x) { return x.p.id === id; }); };
        var chosen = has(wanted.practitioner) ? wanted.practitioner : has(current) ? current : null;
        wanted.practitioner = null; // the query string preselects once
        CB.fill(doctorSelect, rows.length ? [option('', '请选择医生 Choose a doctor', !chosen)].concat(rows.map(function (x) {
          return option(x.p.id, [x.p.name, CB.label('title', x.p.title), departments[x.filing.department_id]]
            .filter(Boolean).join(' · '), x.p.id === chosen);
        })) : option('', '该院暂无备案医生 No doctors filed here'));
        doctorSelect.disabled = !rows.length;
      });
    }

    // --- adding an offline diagnosis ---------------------------------------------------------------------
    var dxSave = CB.$('#dx-save');
    var dxDate = CB.$('#dx-date');
    if (CB.today) dxDate.max = CB.today;
    function saveDiagnosis() {
      var p = currentPatient();
      if (!p) { CB.show('error', '请先选择就诊人 Choose a patient first'); return; }
      var body = {
        hospital_name: CB.$('#dx-hospital').value.trim(),
        diagnosed_on: dxDate.value,
        icd10_code: CB.$('#dx-code').value.trim(),
        diagnosis: CB.$('#dx-text').value.trim()
      };
      if (body.hospital_name.length < 2 || !body.diagnosed_on || body.icd10_code.length < 3 || !body.diagnosis) {
        CB.show('error', '请填写医院、日期、ICD-10 编码和诊断 Fill in hospital, date, ICD-10 code and diagnosis');
        return;
      }
      CB.hideMessage();
      CB.busy(dxSave, CB.post('/api/v1/patients/' + p.id + '/offline-diagnoses', body)).then(function (d) {
        ['#dx-hospital', '#dx-date', '#dx-code', '#dx-text'].forEach(function (s) { CB.$(s).value = ''; });
        CB.show('success', '已添加线下诊断 Diagnosis added');
        return loadDiagnoses(d.id);
      }).catch(showError);
    }
    dxSave.addEventListener('click', saveDiagnosis);
    CB.$('#dx-form').addEventListener('keydown', function (event) {
      // Enter here saves the diagnosis, not the whole request
      if (event.key === 'Enter' && event.target.tagName === 'INPUT') { event.preventDefault(); saveDiagnosis(); }
    });

    // --- the request ---------------------------------------------------------------------------------
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      var missing = !patientSelect.value ? '请选择就诊人 Choose a patient' : !hospitalSelect.value ?
        '请选择医院 Choose a hospital' : !doctorSelect.value ? '请选择医生 Choose a doctor' :
          CB.$('#c-complaint').value.trim().length < 2 ? '请填写主诉 Describe what is the matter' : null;
      if (missing) { CB.show('error', missing); return; }
      var text = function (sel) { var v = CB.$(sel).value.trim(); return v || null; };
      var body = {
        patient_id: patientSelect.value,
        hospital_id: hospitalSelect.value,
        practitioner_id: doctorSelect.value,
        kind: CB.$('#c-kind').value,
        offline_diagnosis_id: diagnosisSelect.value || null,
        complaint: CB.$('#c-complaint').value.trim(),
        history: text('#c-history'),
        allergies: text('#c-allergies')
      };
      if (!guardianField.hidden && text('#c-guardian')) body.guardian_name = text('#c-guardian');
      CB.hideMessage();
      CB.busy(CB.$('#c-submit'), CB.post('/api/v1/consultations', body)).then(function (c) {
        CB.flashNext('success', '已提交，请等待医生接诊 Requested: waiting for the doctor');
        location.assign('/patient/consultations/' + c.id);
      }).catch(showError);
    });

    patientSelect.addEventListener('change', function () { patientChanged(); });
    hospitalSelect.addEventListener('change', function () { hospitalChanged().catch(showError); });
    document.addEventListener('visibilitychange', function () {
      if (document.visibilityState === 'visible') loadList();
    });

    loadList();
    Promise.all([loadPatients(), loadHospitals()]).then(function () {
      if (wanted.hospital && location.hash !== '#consult-form') CB.$('#request-title').scrollIntoView();
    }).catch(showError);
  }

  if (CB.page === 'patient-consultations') consultationsPage();
})();
