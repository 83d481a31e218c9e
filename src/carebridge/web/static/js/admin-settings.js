/* Hospital admin: weekly templates and generation, booking rules and no-show policy, the no-show list. */
(function () {
  'use strict';
  var CB = window.CB;
  var h = CB.h;
  var hospitalId = CB.data.hospitalId;
  var base = '/api/v1/hospitals/' + hospitalId;
  var WEEKDAYS = ['周一 Mon', '周二 Tue', '周三 Wed', '周四 Thu', '周五 Fri', '周六 Sat', '周日 Sun'];

  function options(select, rows, text) {
    CB.fill(select, rows.map(function (r) { return h('option', { value: r.id }, text(r)); }));
  }
  function byId(rows) {
    var out = {};
    rows.forEach(function (r) { out[r.id] = r; });
    return out;
  }
  function intOrNull(el) { return el.value === '' ? null : parseInt(el.value, 10); }
  function timeOrNull(el) { return el.value === '' ? null : el.value; }
  function pools(obj) {
    return Object.keys(obj).map(function (c) { return CB.label('channel', c) + ' ' + obj[c]; }).join(' · ');
  }

  // --- /admin/templates ------------------------------------------------------------------------------
  function templatesPage() {
    var names = { departments: {}, practitioners: {}, visitTypes: {} };
    CB.$('#gen-start').value = CB.addDays(CB.today, 1);

    function loadVisitTypes() {
      return CB.get(base + '/visit-types').then(function (rows) {
        names.visitTypes = byId(rows);
        options(CB.$('#tpl-visit-type'), rows, function (v) { return v.name + ' ' + CB.money(v.fee_fen); });
      });
    }
    function loadTemplates() {
      return CB.get(base + '/schedule-templates').then(function (rows) {
        rows.sort(function (a, b) { return a.weekday - b.weekday || (a.start_time < b.start_time ? -1 : 1); });
        var body = CB.$('#template-table tbody');
        CB.fill(body, rows.length ? rows.map(function (t) {
          var toggle = h('button', { type: 'button', class: 'btn small secondary', onclick: function () {
            CB.busy(toggle, CB.patch('/api/v1/schedule-templates/' + t.id, { active: !t.active }))
              .then(loadTemplates).catch(CB.showError);
          } }, t.active ? '停用 Disable' : '启用 Enable');
          var p = names.practitioners[t.practitioner_id];
          var d = names.departments[t.department_id];
          var v = names.visitTypes[t.visit_type_id];
          return h('tr', { dataset: { templateId: t.id } }, h('td', {}, WEEKDAYS[t.weekday]),
            h('td', {}, CB.label('session', t.session) + ' ' + t.start_time.slice(0, 5) + '–' + t.end_time.slice(0, 5) +
              ' / ' + t.slot_minutes + '′'),
            h('td', {}, p ? p.name : '…'), h('td', {}, d ? d.name : '…'), h('td', {}, v ? v.name : '…'),
            h('td', {}, pools(t.pools)),
            h('td', {}, h('span', { class: 'badge ' + (t.active ? 'ok' : '') }, t.active ? '启用 Active' : '停用 Off')),
            h('td', {}, toggle));
        }) : h('tr', {}, h('td', { colspan: 8, class: 'empty' }, '还没有模板 No templates yet')));
      });
    }

    Promise.all([
      CB.get(base + '/departments').then(function (rows) {
        names.departments = byId(rows);
        options(CB.$('#tpl-department'), rows, function (d) { return d.name; });
      }),
      CB.get('/api/v1/practitioners?limit=200&hospital_id=' + hospitalId).then(function (page) {
        names.practitioners = byId(page.items);
        options(CB.$('#tpl-practitioner'), page.items, function (p) { return p.name + ' ' + CB.label('title', p.title); });
      }),
      loadVisitTypes()
    ]).then(loadTemplates).catch(CB.showError);

    CB.$('#template-form').addEventListener('submit', function (event) {
      event.preventDefault();
      CB.hideMessage();
      var places = {};
      ['platform', 'onsite', 'referral'].forEach(function (c) {
        var n = intOrNull(CB.$('#tpl-' + c));
        if (n) places[c] = n;
      });
      var body = {
        department_id: CB.$('#tpl-department').value, practitioner_id: CB.$('#tpl-practitioner').value,
        visit_type_id: CB.$('#tpl-visit-type').value, weekday: parseInt(CB.$('#tpl-weekday').value, 10),
        session: CB.$('#tpl-session').value, start_time: CB.$('#tpl-start').value, end_time: CB.$('#tpl-end').value,
        slot_minutes: intOrNull(CB.$('#tpl-minutes')), pools: places
      };
      var button = event.target.querySelector('button[type=submit]');
      CB.busy(button, CB.post(base + '/schedule-templates', body)).then(function () {
        CB.show('success', '模板已创建 Template created');
        return loadTemplates();
      }).catch(CB.showError);
    });

    CB.$('#visit-type-form').addEventListener('submit', function (event) {
      event.preventDefault();
      var body = { code: CB.$('#vt-code').value.trim(), name: CB.$('#vt-name').value.trim(),
        fee_fen: Math.round(parseFloat(CB.$('#vt-fee').value) * 100) };
      CB.post(base + '/visit-types', body).then(function () {
        CB.show('success', '号别已添加 Visit type added');
        event.target.reset();
        return loadVisitTypes();
      }).catch(CB.showError);
    });

    CB.$('#generate-form').addEventListener('submit', function (event) {
      event.preventDefault();
      CB.hideMessage();
      var body = { start: CB.$('#gen-start').value, days: intOrNull(CB.$('#gen-days')) };
      CB.busy(CB.$('#generate-button'), CB.post(base + '/schedules/generate', body)).then(function (answer) {
        CB.show('success', '已生成 ' + answer.created + ' 个出诊（已存在的跳过）Created ' + answer.created +
          ' session(s); existing ones were kept.');
      }).catch(CB.showError);
    });
  }

  // --- /admin/rules ----------------------------------------------------------------------------------
  var RULE_FIELDS = ['window_days', 'opens_at', 'same_day_cutoff', 'cancel_deadline_minutes',
    'max_per_practitioner_per_day', 'max_per_department', 'max_total', 'auto_release_hours'];
  var TIME_FIELDS = { opens_at: true, same_day_cutoff: true };

  function rulesPage() {
    var departments = {};

    function showRules(rows) {
      var own = rows.find(function (r) { return r.department_id === null; });
      RULE_FIELDS.forEach(function (f) {
        var value = own ? own[f] : null;
        CB.$('#r-' + f).value = value === null || value === undefined ? '' : TIME_FIELDS[f] ? value.slice(0, 5) : value;
      });
      CB.$('#rules-updated').textContent = own ? ' 更新于 Updated ' + CB.fmtDateTime(own.updated_at) : '';
      CB.$('#rules-fields').disabled = false; // editable once it shows what is stored
      var overrides = rows.filter(function (r) { return r.department_id !== null; });
      CB.fill(CB.$('#overrides tbody'), overrides.length ? overrides.map(function (r) {
        var set = RULE_FIELDS.filter(function (f) { return r[f] !== null; })
          .map(function (f) { return f + ' = ' + r[f]; }).join(', ');
        var d = departments[r.department_id];
        return h('tr', {}, h('td', {}, d ? d.name : r.department_id), h('td', {}, set || '同全院 As hospital'));
      }) : h('tr', {}, h('td', { class: 'muted' }, '没有科室单独规则 No department overrides')));
    }
    function loadRules() { return CB.get(base + '/booking-rules').then(showRules); }

    function showPolicy(p) {
      CB.$('#p-enabled').checked = p.enabled;
      CB.$('#p-threshold').value = p.threshold;
      CB.$('#p-window_days').value = p.window_days;
      CB.$('#p-block_days').value = p.block_days;
      CB.$('#policy-fields').disabled = false;
      CB.$('#policy-text').textContent = p.enabled ? p.window_days + ' 天内爽约 ' + p.threshold + ' 次，暂停在本院预约 ' +
        p.block_days + ' 天。' + p.threshold + ' no-shows within ' + p.window_days + ' days block booking for ' +
        p.block_days + ' days.' : '未启用 Not enabled';
    }

    CB.get(base + '/departments').then(function (rows) { departments = byId(rows); })
      .then(loadRules).catch(CB.showError);
    CB.get(base + '/no-show-policy').then(showPolicy).catch(CB.showError);

    CB.$('#rules-form').addEventListener('submit', function (event) {
      event.preventDefault();
      CB.hideMessage();
      var body = {};
      RULE_FIELDS.forEach(function (f) {
        var el = CB.$('#r-' + f);
        body[f] = TIME_FIELDS[f] ? timeOrNull(el) : intOrNull(el);
      });
      var button = event.target.querySelector('button[type=submit]');
      CB.busy(button, CB.put(base + '/booking-rules', body)).then(function () {
        CB.show('success', '预约规则已保存，立即生效 Rules saved: they apply now');
        return loadRules();
      }).catch(CB.showError);
    });
    CB.$('#policy-form').addEventListener('submit', function (event) {
      event.preventDefault();
      CB.hideMessage();
      var body = { enabled: CB.$('#p-enabled').checked, threshold: intOrNull(CB.$('#p-threshold')),
        window_days: intOrNull(CB.$('#p-window_days')), block_days: intOrNull(CB.$('#p-block_days')) };
      var button = event.target.querySelector('button[type=submit]');
      CB.busy(button, CB.put(base + '/no-show-policy', body)).then(function (p) {
        showPolicy(p);
        CB.show('success', '爽约策略已保存 Policy saved');
      }).catch(CB.showError);
    });
  }

  // --- /admin/no-shows -------------------------------------------------------------------------------
  function noShowsPage() {
    var includeLifted = CB.$('#include-lifted');

    function liftForm(block) {
      var reason = h('input', { required: true, minlength: 2, maxlength: 200, placeholder: '解除原因 Reason' });
      var submit = h('button', { type: 'submit', class: 'btn small' }, '解除 Lift');
      return h('form', { class: 'inline lift-form', onsubmit: function (event) {
        event.preventDefault();
        CB.hideMessage();
        CB.busy(submit, CB.post('/api/v1/booking-blocks/' + block.id + '/lift', { reason: reason.value.trim() }))
          .then(function () {
            CB.show('success', '已解除限制 Block lifted');
            return load();
          }).catch(CB.showError);
      } }, reason, submit);
    }

    function load() {
      var query = includeLifted.checked ? '?include_lifted=true' : '';
      return CB.get(base + '/booking-blocks' + query).then(function (rows) {
        CB.fill(CB.$('#block-table tbody'), rows.length ? rows.map(function (b) {
          var lifted = b.lifted_at !== null;
          return h('tr', { dataset: { blockId: b.id } }, h('td', {}, b.patient_name || '—'),
            h('td', { class: 'num' }, b.no_show_count),
            h('td', {}, CB.fmtDateTime(b.starts_at) + ' → ' + b.ends_on), h('td', {}, b.reason),
            h('td', {}, lifted ? [h('span', { class: 'badge' }, '已解除 Lifted'), ' ', h('small', {}, b.lift_reason)] :
              h('span', { class: 'badge danger' }, '限制中 Blocked')),
            h('td', {}, lifted ? '' : liftForm(b)));
        }) : h('tr', {}, h('td', { colspan: 6, class: 'empty' }, '没有爽约限制 No one is blocked')));
      }).catch(CB.showError);
    }
    includeLifted.addEventListener('change', load);
    CB.get(base + '/no-show-policy').then(function (p) {
      CB.fill(CB.$('#policy-line'), [p.enabled ? '策略 Policy: ' + p.window_days + ' 天内爽约 ' + p.threshold + ' 次，限制 ' +
        p.block_days + ' 天。' : '爽约策略未启用 The no-show policy is off. ', h('a', { href: '/admin/rules' }, '修改 Edit')]);
    }).catch(CB.showError);
    load();
  }

  var pages = { 'admin-templates': templatesPage, 'admin-rules': rulesPage, 'admin-no-shows': noShowsPage };
  if (pages[CB.page]) pages[CB.page]();
})();
