/* Case list: supervisors see their region's cases; a hospital admin those sent to their hospital. */
(function () {
  'use strict';
  var CB = window.CB, SV = window.SV, h = CB.h;
  var list = CB.$('#case-list');
  var params = new URLSearchParams(location.search);
  var hospitalFilter = params.get('hospital_id');
  var mine = CB.$('#case-mine');
  var generation = 0;

  function load() {
    var mineNow = ++generation;
    var q = new URLSearchParams({ limit: '200' });
    if (CB.$('#case-status').value) q.set('status', CB.$('#case-status').value);
    if (CB.$('#case-overdue').checked) q.set('overdue', 'true');
    if (mine && mine.checked) q.set('assigned_to_me', 'true');
    if (hospitalFilter) q.set('hospital_id', hospitalFilter);
    return Promise.all([CB.get(SV.BASE + '/cases?' + q.toString()), SV.hospitals()]).then(function (r) {
      if (mineNow !== generation) return;
      var rows = r[0], names = r[1];
      if (!rows.length) {
        CB.fill(list, h('p', { class: 'muted empty' }, '没有符合条件的案件 No cases match'));
        return;
      }
      CB.fill(list, h('table', { class: 'sv-cases' },
        h('thead', {}, h('tr', {}, SV.th('编号', 'Number'), SV.th('案件', 'Case'), SV.th('级别', 'Severity'),
          SV.th('状态', 'Status'), SV.supervisor ? SV.th('医院', 'Hospital') : null, SV.th('来源', 'Source'),
          SV.th('预警数', 'Warnings', 'num'), SV.th('期限', 'Due'))),
        h('tbody', {}, rows.map(function (c) {
          return h('tr', { dataset: { caseId: c.id, status: c.status } },
            h('td', {}, h('a', { href: SV.caseUrl(c.id) }, c.number)),
            h('td', {}, c.title, h('div', { class: 'muted small' }, c.rule_code)),
            h('td', {}, SV.severity(c.severity)),
            h('td', {}, SV.status(c.status)),
            SV.supervisor ? h('td', {}, SV.hospitalName(names, c.hospital_id)) : null,
            h('td', {}, SV.SOURCE[c.source] || c.source),
            h('td', { class: 'num' }, c.warning_count),
            h('td', { class: c.overdue ? 'alert' : '' }, CB.fmtDateTime(c.due_at), c.overdue ? ' 逾期 overdue' : ''));
        }))));
    });
  }
  ['#case-status', '#case-overdue'].forEach(function (sel) {
    CB.$(sel).addEventListener('change', function () { load().catch(SV.fail); });
  });
  if (mine) mine.addEventListener('change', function () { load().catch(SV.fail); });
  load().catch(SV.fail);
})();
