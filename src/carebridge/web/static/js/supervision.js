/* Supervision pages (regulators, platform admins; hospital admins for their cases): shared labels and helpers
   (window.SV). Loaded after app.js. */
(function () {
  'use strict';
  var CB = window.CB;
  var h = CB.h;
  var BASE = '/api/v1/supervision';
  var role = CB.data.role;
  var supervisor = role === 'regulator' || role === 'platform_admin';

  var SEVERITY = { info: '提示 Info', warning: '预警 Warning', block: '拦截 Block' };
  var SEVERITY_CLASS = { info: '', warning: 'warn', block: 'danger' };
  var STATUS = { open: '待处理 Open', rectifying: '整改中 Rectifying', answered: '已答复 Answered',
    resolved: '已办结 Resolved', dismissed: '已驳回 Dismissed' };
  var STATUS_CLASS = { open: 'danger', rectifying: 'warn', answered: 'brand', resolved: 'ok', dismissed: '' };
  var SOURCE = { rule: '规则 Rule', anomaly: '异常 Anomaly', complaint: '投诉 Complaint' };
  var ERRORS = {
    case_status: '案件当前状态不允许此操作 Not allowed in the case\'s current status',
    case_state_changed: '案件已被他人处理，请刷新 Someone else acted first: reload',
    case_already_open: '同一规则和对象已有进行中的案件 A newer case of this rule is open',
    invalid_assignee: '该监管员不负责此案件所在辖区 That supervisor does not cover this case',
    invalid_params: '参数无效 Invalid parameter',
    rule_version_conflict: '规则已被他人修改，请刷新 Someone changed the rule meanwhile: reload',
    rule_scope: '超出您的辖区 Outside your region',
    invalid_range: '日期范围无效 Invalid date range'
  };

  function fail(err) {
    if (err instanceof CB.ApiError && ERRORS[err.code]) {
      CB.show('error', ERRORS[err.code] + (err.message ? ' — ' + err.message : ''), err.code);
    } else {
      CB.showError(err);
    }
  }
  function severity(value) {
    return h('span', { class: 'badge ' + (SEVERITY_CLASS[value] || ''), dataset: { severity: value } }, SEVERITY[value] || value);
  }
  function status(value) {
    return h('span', { class: 'badge ' + (STATUS_CLASS[value] || ''), dataset: { status: value } }, STATUS[value] || value);
  }
  function th(zh, en, cls) { return h('th', { class: cls }, zh, ' ', h('small', {}, en)); }
  function caseUrl(id) { return (supervisor ? '/regulator/cases/' : '/admin/cases/') + id; }

  /* Hospital names in the caller's region (the ranking lists every active hospital there). */
  var hospitalsPromise = null;
  function hospitals() {
    if (!supervisor) return Promise.resolve({});
    if (!hospitalsPromise) {
      hospitalsPromise = CB.get(BASE + '/ranking?limit=1000').then(function (rows) {
        var names = {};
        rows.forEach(function (r) { names[r.hospital_id] = r; });
        return names;
      }).catch(function () { return {}; });
    }
    return hospitalsPromise;
  }
  function hospitalName(names, id) { return id ? ((names[id] && names[id].name) || id.slice(0, 8)) : '—'; }

  /* One warning as a feed or list item. */
  function warningItem(w, names) {
    return h('li', { class: 'sv-warning sev-' + w.severity, dataset: { warningId: w.id, rule: w.rule_code } },
      h('div', { class: 'sv-warning-top' },
        severity(w.severity), ' ', h('b', {}, w.rule_code), w.regulation ? h('small', {}, ' ' + w.regulation) : null,
        h('span', { class: 'muted sv-time' }, CB.fmtDateTime(w.created_at))),
      h('div', { class: 'sv-message' }, w.message),
      h('div', { class: 'muted small' },
        hospitalName(names, w.hospital_id), ' · ', w.subject_type, ' ', w.subject_id.slice(0, 8),
        w.case_id ? [' · ', h('a', { href: caseUrl(w.case_id) }, '案件 Case')] : null));
  }

  window.SV = {
    BASE: BASE, supervisor: supervisor, fail: fail, severity: severity, status: status, th: th,
    caseUrl: caseUrl, hospitals: hospitals, hospitalName: hospitalName, warningItem: warningItem,
    SOURCE: SOURCE, STATUS: STATUS
  };
})();
