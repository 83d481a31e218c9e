/* One case: its head, history, warnings with their evidence, and what the caller may do next.
   Supervisors: assign, comment, ask the hospital to rectify, resolve or dismiss, reopen.
   Hospital admins: the shared part only, and their answer while the case waits for it. */
(function () {
  'use strict';
  var CB = window.CB, SV = window.SV, h = CB.h;
  var caseId = CB.data.caseId;
  var url = SV.BASE + '/cases/' + caseId;
  var KIND = {
    opened: '立案 Opened', assigned: '分配 Assigned', comment: '备注 Comment', rectification_requested: '要求整改 Rectification requested',
    answered: '医院答复 Hospital answered', escalated: '逾期升级 Escalated', resolved: '办结 Resolved',
    dismissed: '驳回 Dismissed', reopened: '重新打开 Reopened'
  };
  var current = null;

  function field(id, zh, en, input) { return h('div', { class: 'field' }, h('label', { for: id }, zh + ' ' + en), input); }
  function textarea(id, required) { return h('textarea', { id: id, rows: 3, maxlength: 2000, required: required }); }

  function act(button, path, body, done) {
    return CB.busy(button, CB.post(url + path, body).then(function () {
      CB.show('success', done);
      return load();
    })).catch(SV.fail);
  }

  function form(id, title, children, submitText, onSubmit, cls) {
    var f = h('form', { id: id, class: 'sv-action ' + (cls || '') }, h('h3', {}, title), children,
      h('button', { type: 'submit', class: 'btn', id: id + '-submit' }, submitText));
    f.addEventListener('submit', function (event) { event.preventDefault(); onSubmit(f.querySelector('button[type=submit]')); });
    return f;
  }

  function supervisorActions(c, supervisors) {
    var closed = c.status === 'resolved' || c.status === 'dismissed';
    var out = [];
    if (closed) {
      out.push(form('reopen-form', '重新打开 Reopen', field('reopen-reason', '原因', 'Reason', textarea('reopen-reason', true)),
        '重新打开 Reopen', function (b) {
          act(b, '/reopen', { reason: CB.$('#reopen-reason').value.trim() }, '案件已重新打开 Case reopened');
        }));
      return out;
    }
    var select = h('select', { id: 'assign-to' }, supervisors.map(function (u) {
      return h('option', { value: u.id, selected: u.id === c.assignee_user_id }, u.display_name + ' (' + (u.region_code || '') + ')');
    }));
    out.push(form('assign-form', '分配 Assign', field('assign-to', '监管员', 'Supervisor', select), '分配 Assign', function (b) {
      act(b, '/assign', { assignee_user_id: select.value }, '已分配 Assigned');
    }, 'inline'));
    out.push(form('comment-form', '内部备注 Internal comment', field('comment-text', '备注', 'Comment', textarea('comment-text', true)),
      '添加 Add', function (b) { act(b, '/comments', { text: CB.$('#comment-text').value.trim() }, '已添加 Added'); }));
    if (c.status === 'open' || c.status === 'answered') {
      out.push(form('rectify-form', '要求医院整改 Ask the hospital to rectify', [
        field('rectify-text', '整改要求', 'What to put right', textarea('rectify-text', true)),
        field('rectify-days', '期限(天)', 'Days to answer', h('input', { id: 'rectify-days', type: 'number', min: 1, max: 90, value: 7 }))
      ], '发送 Send', function (b) {
        act(b, '/rectification', { text: CB.$('#rectify-text').value.trim(), due_in_days: +CB.$('#rectify-days').value },
          '已发送医院 Sent to the hospital');
      }));
    }
    out.push(form('close-form', '结案 Close', [
      field('close-outcome', '结论', 'Outcome', h('select', { id: 'close-outcome' },
        h('option', { value: 'resolved' }, '办结（问题已处理）Resolved'), h('option', { value: 'dismissed' }, '驳回（非违规）Dismissed'))),
      field('close-reason', '理由', 'Reason', textarea('close-reason', true))
    ], '结案 Close', function (b) {
      act(b, '/close', { outcome: CB.$('#close-outcome').value, reason: CB.$('#close-reason').value.trim() }, '已结案 Closed');
    }));
    return out;
  }

  function hospitalActions(c) {
    if (c.status !== 'rectifying') {
      return [h('p', { class: 'muted' }, c.status === 'answered' ? '已答复，等待监管部门处理 Answered: the regulator decides next' : '')];
    }
    return [form('answer-form', '整改答复 Your answer', field('answer-text', '整改情况', 'What you did', textarea('answer-text', true)),
      '提交答复 Submit answer', function (b) {
        act(b, '/answer', { text: CB.$('#answer-text').value.trim() }, '已提交答复 Answer sent');
      })];
  }

  function renderHead(view, names) {
    var c = view.case;
    CB.fill(CB.$('#case-head'), [
      h('div', { class: 'card-head' }, h('h1', {}, c.number, ' ', h('small', {}, c.title)),
        h('span', {}, SV.severity(c.severity), ' ', SV.status(c.status))),
      h('dl', { class: 'sv-facts' },
        h('dt', {}, '规则 Rule'), h('dd', {}, c.rule_code + (c.regulation ? ' (' + c.regulation + ')' : '')),
        h('dt', {}, '来源 Source'), h('dd', {}, SV.SOURCE[c.source] || c.source),
        h('dt', {}, '对象 Subject'), h('dd', {}, c.subject_type + ' ' + c.subject_id),
        SV.supervisor ? [h('dt', {}, '医院 Hospital'), h('dd', {}, SV.hospitalName(names, c.hospital_id))] : null,
        h('dt', {}, '立案 Opened'), h('dd', {}, CB.fmtDateTime(c.opened_at)),
        h('dt', {}, '期限 Due'), h('dd', { class: c.overdue ? 'alert' : '', id: 'case-due' }, CB.fmtDateTime(c.due_at), c.overdue ? ' 已逾期 overdue' : ''),
        SV.supervisor ? [h('dt', {}, '负责人 Assignee'), h('dd', { id: 'case-assignee' }, view.assignee_name || '未分配 Unassigned')] : null,
        h('dt', {}, '预警数 Warnings'), h('dd', {}, c.warning_count),
        c.resolution ? [h('dt', {}, '结论 Resolution'), h('dd', {}, c.resolution)] : null)
    ]);
  }

  function renderHistory(entries) {
    CB.fill(CB.$('#case-history'), entries.map(function (e) {
      return h('li', { class: 'sv-entry kind-' + e.kind + (e.shared ? ' shared' : ''), dataset: { kind: e.kind } },
        h('div', { class: 'sv-entry-top' }, h('b', {}, KIND[e.kind] || e.kind), ' ',
          h('span', { class: 'muted' }, e.actor_name + ' · ' + CB.fmtDateTime(e.at)),
          e.status_to && e.status_from !== e.status_to ? [' ', SV.status(e.status_to)] : null,
          SV.supervisor && e.shared ? h('small', { class: 'muted' }, ' 医院可见 shared') : null),
        e.text ? h('div', { class: 'sv-entry-text' }, e.text) : null);
    }));
  }

  function renderWarnings(warnings) {
    if (!warnings.length) { CB.fill(CB.$('#case-warnings'), h('p', { class: 'muted' }, '无 None')); return; }
    CB.fill(CB.$('#case-warnings'), h('ol', { class: 'sv-feed' }, warnings.map(function (w) {
      return h('li', { class: 'sv-warning sev-' + w.severity },
        h('div', { class: 'sv-warning-top' }, SV.severity(w.severity), ' ', h('b', {}, w.rule_code),
          h('span', { class: 'muted sv-time' }, CB.fmtDateTime(w.occurred_at))),
        h('div', { class: 'sv-message' }, w.message),
        Object.keys(w.details || {}).length ? h('details', {}, h('summary', {}, '详情 Details'),
          h('pre', { class: 'sv-json' }, JSON.stringify(w.details, null, 2))) : null,
        SV.supervisor && w.evidence.length ? h('div', { class: 'small' }, '证据事件 Evidence: ', w.evidence.map(function (id) {
          return h('a', { href: '/regulator/trace?event=' + id, class: 'sv-evidence' }, id.slice(0, 8) + ' ');
        })) : null);
    })));
  }

  function renderComplaint(c) {
    var box = CB.$('#case-complaint');
    if (c.source !== 'complaint') { box.replaceChildren(); return; }
    var button = h('button', { type: 'button', class: 'btn secondary small', id: 'complaint-read' }, '查看投诉内容（留痕）Read the complaint (audited)');
    button.addEventListener('click', function () {
      CB.busy(button, CB.get('/api/v1/complaints/' + c.subject_id).then(function (complaint) {
        CB.fill(box, h('blockquote', { class: 'sv-complaint', id: 'complaint-text' },
          h('b', {}, complaint.number + ' · ' + complaint.category), h('p', {}, complaint.text)));
      })).catch(SV.fail);
    });
    CB.fill(box, button);
  }

  function load() {
    return Promise.all([
      CB.get(url), SV.hospitals(), SV.supervisor ? CB.get(SV.BASE + '/supervisors') : Promise.resolve([])
    ]).then(function (r) {
      var view = r[0];
      current = view.case;
      renderHead(view, r[1]);
      renderHistory(view.entries);
      renderWarnings(view.warnings);
      renderComplaint(current);
      CB.fill(CB.$('#case-actions'), SV.supervisor ? supervisorActions(current, r[2]) : hospitalActions(current));
      document.body.dataset.caseStatus = current.status;
    });
  }
  load().catch(SV.fail);
})();
