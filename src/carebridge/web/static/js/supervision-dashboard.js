/* Regulator dashboard: figures at a glance, the live warning feed (Server-Sent Events), indicator charts over
   time, and the hospitals of the region ranked by warnings. */
(function () {
  'use strict';
  var CB = window.CB, SV = window.SV, h = CB.h;
  var feed = CB.$('#sv-feed');
  var feedEmpty = CB.$('#feed-empty');
  var feedState = CB.$('#feed-state');
  var MAX_FEED = 100;
  var names = {};
  var RATE = { antibiotic_rate: 1, special_drug_rate: 1, late_record_rate: 1, high_value_rate: 1 };
  var METRIC = {
    consultations: '问诊 Consultations', prescriptions: '处方 Prescriptions', warnings: '预警 Warnings',
    cases_opened: '新案件 Cases opened', antibiotic_rate: '抗菌药占比 Antibiotic rate',
    special_drug_rate: '特殊药品占比 Special-drug rate', avg_prescription_fen: '平均处方金额 Avg prescription (fen)',
    late_record_rate: '病历超时率 Late records', qc_defects_per_record: '每份病历缺陷 Defects per record',
    warnings_per_100: '每百问诊预警 Warnings per 100', complaints_per_100: '每百问诊投诉 Complaints per 100',
    avg_rating: '平均评分 Average rating'
  };

  function localMidnightIso() {
    // the platform's local day start (the page knows the day and the zone; the browser's clock may differ)
    var probe = new Date(CB.today + 'T00:00:00Z');
    var inZone = new Date(probe.toLocaleString('en-US', { timeZone: CB.zone }));
    var offset = inZone.getTime() - new Date(probe.toLocaleString('en-US', { timeZone: 'UTC' })).getTime();
    return new Date(probe.getTime() - offset).toISOString();
  }

  // --- figures -----------------------------------------------------------------------------------------------

  function stat(value, zh, en, cls) { return h('div', { class: cls }, h('b', {}, value), h('span', {}, zh + ' ' + en)); }
  function loadKpis() {
    return Promise.all([
      CB.get(SV.BASE + '/warnings?limit=500&since=' + encodeURIComponent(localMidnightIso())),
      CB.get(SV.BASE + '/cases?status=active&limit=500'),
      CB.get(SV.BASE + '/cases?status=active&overdue=true&limit=500'),
      SV.hospitals()
    ]).then(function (r) {
      var more = function (list) { return list.length >= 500 ? '500+' : String(list.length); };
      CB.fill(CB.$('#sv-kpis'), [
        stat(more(r[0]), '今日预警', 'Warnings today', 'kpi-warnings'),
        stat(more(r[1]), '处理中案件', 'Active cases', 'kpi-cases'),
        stat(more(r[2]), '逾期案件', 'Overdue cases', r[2].length ? 'kpi-overdue alert' : 'kpi-overdue'),
        stat(String(Object.keys(r[3]).length), '监管医院', 'Hospitals watched', 'kpi-hospitals')
      ]);
    });
  }

  // --- live feed ---------------------------------------------------------------------------------------------

  function addWarnings(list, live) {
    list.slice().reverse().forEach(function (w) {
      if (feed.querySelector('[data-warning-id="' + w.id + '"]')) return;
      var item = SV.warningItem(w, names);
      if (live) item.classList.add('fresh');
      feed.insertBefore(item, feed.firstChild);
    });
    while (feed.children.length > MAX_FEED) feed.removeChild(feed.lastChild);
    feedEmpty.hidden = feed.children.length > 0;
  }
  function setState(state, text) { feedState.dataset.state = state; feedState.textContent = text; }
  function connect() {
    // from when the page was rendered: nothing raised while it loaded is missed (repeats are skipped by id)
    var source = new EventSource(SV.BASE + '/warnings/stream?since=' + encodeURIComponent(CB.data.now));
    source.addEventListener('open', function () { setState('live', '实时 Live'); });
    source.addEventListener('warnings', function (event) {
      addWarnings(JSON.parse(event.data), true);
      loadKpis().catch(function () { /* figures refresh on the next warning */ });
    });
    source.addEventListener('error', function () {
      // EventSource reconnects by itself; a closed one (e.g. the session ended) needs a page reload
      setState(source.readyState === EventSource.CLOSED ? 'closed' : 'connecting',
        source.readyState === EventSource.CLOSED ? '已断开 Disconnected' : '重连中 Reconnecting');
    });
  }

  // --- charts ------------------------------------------------------------------------------------------------

  var chartBox = CB.$('#sv-chart');
  function drawChart() {
    var metrics = CB.$('#chart-metric').value.split(',');
    var days = +CB.$('#chart-days').value;
    var since = CB.addDays(CB.today, -(days - 1));
    return CB.get(SV.BASE + '/indicators/daily?since=' + since + '&until=' + CB.today).then(function (rows) {
      var percent = metrics.every(function (m) { return RATE[m]; });
      window.CBChart.line(chartBox, metrics.map(function (m) {
        return { name: METRIC[m] || m, values: rows.map(function (r) { return r.metrics[m]; }) };
      }), { labels: rows.map(function (r) { return r.day; }), percent: percent });
      var last = rows[rows.length - 1];
      CB.$('#chart-note').textContent = last && last.computed_at
        ? '今日数据更新于 Today computed at ' + CB.fmtDateTime(last.computed_at) + '（每 5 分钟 every 5 minutes）'
        : '今日数据尚未计算 Today not computed yet';
    });
  }
  CB.$('#chart-metric').addEventListener('change', function () { drawChart().catch(SV.fail); });
  CB.$('#chart-days').addEventListener('change', function () { drawChart().catch(SV.fail); });

  // --- ranking -----------------------------------------------------------------------------------------------

  function loadRanking() {
    return CB.get(SV.BASE + '/ranking?limit=50').then(function (rows) {
      if (!rows.length) {
        CB.fill(CB.$('#sv-ranking'), h('p', { class: 'muted' }, '辖区内暂无医院 No hospitals in your region'));
        return;
      }
      CB.fill(CB.$('#sv-ranking'), h('table', { class: 'sv-ranking' },
        h('thead', {}, h('tr', {}, SV.th('#', '', 'num'), SV.th('医院', 'Hospital'), SV.th('等级', 'Level'),
          SV.th('预警', 'Warnings', 'num'), SV.th('拦截', 'Blocks', 'num'), SV.th('处理中案件', 'Active cases', 'num'),
          SV.th('逾期', 'Overdue', 'num'))),
        h('tbody', {}, rows.map(function (r) {
          return h('tr', { dataset: { hospitalId: r.hospital_id } },
            h('td', { class: 'num' }, r.rank),
            h('td', {}, h('a', { href: '/regulator/cases?hospital_id=' + r.hospital_id }, r.name),
              h('div', { class: 'muted small' }, r.region_code)),
            h('td', {}, CB.label('level', r.level)),
            h('td', { class: 'num' }, r.warnings),
            h('td', { class: 'num' }, r.by_severity.block),
            h('td', { class: 'num' }, r.open_cases),
            h('td', { class: 'num' + (r.overdue_cases ? ' alert' : '') }, r.overdue_cases));
        }))));
    });
  }

  SV.hospitals().then(function (n) {
    names = n;
    return CB.get(SV.BASE + '/warnings?limit=20');
  }).then(function (recent) {
    addWarnings(recent, false);
    connect();
  }).catch(SV.fail);
  loadKpis().catch(SV.fail);
  drawChart().catch(SV.fail);
  loadRanking().catch(SV.fail);
})();
