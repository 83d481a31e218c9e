/* Rule configuration: every rule with its thresholds, severity and state; an edit form built from the rule
   type's parameter schema; the change applies to the next event and is versioned (who, when, before, after). */
(function () {
  'use strict';
  var CB = window.CB, SV = window.SV, h = CB.h;
  var list = CB.$('#rule-list');
  var dialog = CB.$('#rule-dialog');
  var types = {};
  var rules = [];
  var editing = null;

  function paramsText(params) {
    return Object.keys(params || {}).map(function (k) {
      var v = params[k];
      return k + ': ' + (Array.isArray(v) ? v.join(', ') : v);
    }).join(' · ');
  }

  function render() {
    var term = CB.$('#rule-search').value.trim().toLowerCase();
    var shown = rules.filter(function (r) {
      return !term || (r.code + ' ' + r.rule_type + ' ' + r.name + ' ' + (r.regulation || '')).toLowerCase().indexOf(term) >= 0;
    });
    CB.fill(list, h('table', { class: 'sv-rules' },
      h('thead', {}, h('tr', {}, SV.th('规则', 'Rule'), SV.th('级别', 'Severity'), SV.th('参数', 'Parameters'),
        SV.th('范围', 'Scope'), SV.th('状态', 'State'), SV.th('版本', 'Version', 'num'), h('th', {}))),
      h('tbody', {}, shown.map(function (r) {
        var edit = h('button', { type: 'button', class: 'btn small secondary', dataset: { edit: r.code } }, '编辑 Edit');
        edit.addEventListener('click', function () { open(r); });
        return h('tr', { dataset: { rule: r.code }, class: r.enabled ? '' : 'disabled' },
          h('td', {}, h('b', {}, r.code), h('div', { class: 'muted small' }, r.name),
            r.error_count ? h('div', { class: 'alert small' }, '运行错误 Errors: ' + r.error_count + ' — ' + (r.last_error || '')) : null),
          h('td', {}, SV.severity(r.severity)),
          h('td', { class: 'small sv-params' }, r.expression ? h('code', {}, r.expression) : paramsText(r.params)),
          h('td', { class: 'small' }, r.scope_kind + (r.scope_value ? ' ' + r.scope_value : '')),
          h('td', {}, r.enabled ? h('span', { class: 'badge ok' }, '启用 On') : h('span', { class: 'badge' }, '停用 Off')),
          h('td', { class: 'num' }, r.version),
          h('td', {}, edit));
      }))));
  }

  function input(name, schema, value) {
    var id = 'param-' + name;
    var label = h('label', { for: id }, (schema.title || name) + ' ', h('small', {}, name));
    var el;
    if (schema.enum) {
      el = h('select', { id: id, name: name }, schema.enum.map(function (v) { return h('option', { value: v, selected: v === value }, v); }));
    } else if (schema.type === 'integer' || schema.type === 'number') {
      el = h('input', { id: id, name: name, type: 'number', step: schema.type === 'integer' ? 1 : 'any',
        min: schema.minimum, max: schema.maximum, value: value, required: true });
    } else if (schema.type === 'boolean') {
      el = h('input', { id: id, name: name, type: 'checkbox', checked: !!value });
    } else if (schema.type === 'array') {
      el = h('input', { id: id, name: name, value: (value || []).join(', '), placeholder: 'a, b, c' });
    } else {
      el = h('input', { id: id, name: name, value: value === undefined || value === null ? '' : value });
    }
    el.dataset.kind = schema.enum ? 'enum' : schema.type || 'string';
    return h('div', { class: 'field' }, label, el);
  }

  function readParams() {
    var out = {};
    CB.$('#rule-params').querySelectorAll('[name]').forEach(function (el) {
      var kind = el.dataset.kind;
      if (kind === 'integer') out[el.name] = parseInt(el.value, 10);
      else if (kind === 'number') out[el.name] = parseFloat(el.value);
      else if (kind === 'boolean') out[el.name] = el.checked;
      else if (kind === 'array') out[el.name] = el.value.split(',').map(function (s) { return s.trim(); }).filter(Boolean);
      else out[el.name] = el.value;
    });
    return out;
  }

  function open(rule) {
    editing = rule;
    var schema = (types[rule.rule_type] || {}).params_schema || { properties: {} };
    CB.$('#rule-dialog-title').textContent = rule.code;
    CB.$('#rule-dialog-type').textContent = rule.rule_type + ' — ' + ((types[rule.rule_type] || {}).title || rule.name);
    CB.fill(CB.$('#rule-params'), Object.keys(schema.properties || {}).map(function (name) {
      return input(name, schema.properties[name], rule.params[name]);
    }));
    CB.$('#rule-severity').value = rule.severity;
    CB.$('#rule-enabled').checked = rule.enabled;
    CB.fill(CB.$('#rule-versions'), h('li', { class: 'muted' }, '加载中… Loading…'));
    dialog.showModal();
    CB.get(SV.BASE + '/rules/' + rule.id + '/versions').then(function (versions) {
      CB.fill(CB.$('#rule-versions'), versions.map(function (v) { // newest first
        var before = v.before || {}, after = v.after;
        var changed = Object.keys(after).filter(function (k) { return JSON.stringify(before[k]) !== JSON.stringify(after[k]); });
        return h('li', { class: 'sv-entry' }, h('b', {}, 'v' + v.version), ' ', h('span', { class: 'muted' }, v.changed_by + ' · ' + CB.fmtDateTime(v.changed_at)),
          h('div', { class: 'small' }, v.before ? changed.map(function (k) {
            return h('div', {}, k + ': ' + JSON.stringify(before[k]) + ' → ' + JSON.stringify(after[k]));
          }) : '创建 Created'));
      }));
    }).catch(SV.fail);
  }

  CB.$('#rule-cancel').addEventListener('click', function () { dialog.close(); });
  CB.$('#rule-form').addEventListener('submit', function (event) {
    event.preventDefault();
    var rule = editing;
    var body = { version: rule.version, params: readParams(), severity: CB.$('#rule-severity').value,
      enabled: CB.$('#rule-enabled').checked };
    CB.busy(CB.$('#rule-save'), CB.patch(SV.BASE + '/rules/' + rule.id, body).then(function (saved) {
      rules = rules.map(function (r) { return r.id === saved.id ? saved : r; });
      dialog.close();
      render();
      CB.show('success', '已保存，对后续事件立即生效 Saved: applies to the next event (v' + saved.version + ')');
    })).catch(SV.fail);
  });
  CB.$('#rule-search').addEventListener('input', render);

  Promise.all([CB.get(SV.BASE + '/rule-types'), CB.get(SV.BASE + '/rules')]).then(function (r) {
    r[0].forEach(function (t) { types[t.name] = t; });
    rules = r[1];
    render();
  }).catch(SV.fail);
})();
