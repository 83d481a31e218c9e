/* The developer portal: sign-up, my apps (every app, for platform admins), registration, one app's page
   (credentials, keys and redirect URIs, scopes, sandbox, webhooks and their delivery log, usage, alerts; review
   and limits for platform admins), and the FHIR CapabilityStatement. Everything through the JSON API. */
(function () {
  'use strict';
  var CB = window.CB;
  var h = CB.h;
  var APPS = '/api/v1/partner-apps';
  var STATUS = { pending: ['待审核 Pending', 'warn'], approved: ['已批准 Approved', 'ok'],
    suspended: ['已暂停 Suspended', 'danger'], rejected: ['已拒绝 Rejected', ''] };
  var KIND = { patient_facing: '面向患者 Patient-facing', backend: '后台服务 Backend' };
  var DELIVERY = { pending: ['重试中 Pending', 'warn'], delivered: ['已送达 Delivered', 'ok'], dead: ['失败 Dead', 'danger'] };
  var CONTEXT = { patient: '所选患者的 the patient\'s', user: '用户可见的 what the user may see of',
    system: '授权医院的 the granting hospitals\'' };
  var PERMS = { c: '新建 create', r: '读取 read', u: '修改 update', d: '删除 delete', s: '检索 search' };
  var SPECIAL = {
    'launch/patient': '授权时选择患者 choose a patient at sign-in',
    launch: '由 EHR 启动 launched from an EHR',
    openid: '登录身份 OpenID Connect identity',
    fhirUser: '用户的 FHIR 身份 the user\'s FHIR identity',
    offline_access: '刷新令牌（长期） refresh tokens, kept',
    online_access: '刷新令牌（会话内） refresh tokens, while signed in'
  };
  var CHOICES = {
    patient_facing: ['launch/patient', 'openid', 'fhirUser', 'offline_access', 'patient/Patient.r',
      'patient/Appointment.cruds', 'user/Slot.rs', 'user/Schedule.rs', 'user/Practitioner.rs',
      'user/Organization.rs', 'patient/Encounter.rs', 'patient/MedicationRequest.rs'],
    backend: ['system/Appointment.cruds', 'system/Slot.rs', 'system/Schedule.rs', 'system/Patient.r',
      'system/Practitioner.rs', 'system/Organization.rs', 'system/Encounter.rs']
  };
  var DEFAULTS = { patient_facing: ['launch/patient', 'offline_access', 'patient/Patient.r', 'patient/Appointment.cruds',
    'user/Slot.rs'], backend: ['system/Appointment.cruds', 'system/Slot.rs'] };

  function statusBadge(status) {
    var s = STATUS[status] || [status, ''];
    return h('span', { class: 'badge ' + s[1], dataset: { status: status } }, s[0]);
  }
  function lines(text) {
    return text.split('\n').map(function (l) { return l.trim(); }).filter(Boolean);
  }
  function scopeMeaning(scope) {
    if (SPECIAL[scope]) return SPECIAL[scope];
    var m = /^(patient|user|system)\/([A-Za-z*]+)\.([cruds]+)$/.exec(scope);
    if (!m) return '';
    var what = m[2] === '*' ? '全部资源 every resource' : m[2];
    return CONTEXT[m[1]] + ' ' + what + '：' + m[3].split('').map(function (p) { return PERMS[p]; }).join('、');
  }
  function when(iso) { return iso ? CB.fmtDateTime(iso) : '—'; }
  function del(path) { return CB.api('DELETE', path); }

  // --- /portal/signup ---------------------------------------------------------------------------------------
  function signupPage() {
    CB.$('#developer-form').addEventListener('submit', function (event) {
      event.preventDefault();
      var body = { username: CB.$('#dev-username').value.trim(), display_name: CB.$('#dev-display').value.trim(),
        password: CB.$('#dev-password').value };
      CB.busy(CB.$('#dev-submit'), CB.post('/api/v1/developers', body, { stay: true })
        .then(function () { return CB.post('/api/v1/auth/login', { username: body.username, password: body.password }); })
        .then(function () { location.assign('/portal'); }))
        .catch(CB.showError);
    });
  }

  // --- /portal ----------------------------------------------------------------------------------------------
  function appsPage() {
    var filter = CB.$('#status-filter');
    function load() {
      var query = filter.value ? '?status=' + filter.value : '';
      return CB.get(APPS + query).then(function (apps) {
        CB.fill(CB.$('#app-table tbody'), apps.length ? apps.map(function (a) {
          return h('tr', { dataset: { appId: a.id } },
            h('td', {}, h('a', { href: '/portal/apps/' + a.id }, a.name)), h('td', {}, a.organisation),
            h('td', {}, KIND[a.kind]), h('td', {}, statusBadge(a.status)), h('td', {}, h('code', {}, a.client_id)),
            h('td', {}, when(a.created_at)));
        }) : h('tr', {}, h('td', { colspan: 6, class: 'empty' }, CB.data.role === 'developer'
          ? ['还没有应用 No apps yet — ', h('a', { href: '/portal/apps/new' }, '注册一个 register one')]
          : '没有应用 No apps')));
      }).catch(CB.showError);
    }
    filter.addEventListener('change', load);
    load();
  }

  // --- /portal/apps/new -------------------------------------------------------------------------------------
  function newAppPage() {
    var form = CB.$('#app-form');
    function kind() { return form.querySelector('input[name=kind]:checked').value; }
    function showKind() {
      var k = kind();
      form.querySelectorAll('[data-kind]').forEach(function (el) { el.hidden = el.dataset.kind !== k; });
      CB.fill(CB.$('#scope-choices'), CHOICES[k].map(function (scope) {
        return h('label', { class: 'check' }, h('input', { type: 'checkbox', value: scope, name: 'scope',
          checked: DEFAULTS[k].indexOf(scope) >= 0 }), h('code', {}, scope), h('small', {}, scopeMeaning(scope)));
      }));
    }
    form.querySelectorAll('input[name=kind]').forEach(function (r) { r.addEventListener('change', showKind); });
    showKind();
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      CB.hideMessage();
      var k = kind();
      var scopes = Array.prototype.map.call(form.querySelectorAll('input[name=scope]:checked'), function (c) { return c.value; })
        .concat(CB.$('#app-more-scopes').value.split(/\s+/).filter(Boolean));
      var body = { organisation: CB.$('#app-organisation').value.trim(), name: CB.$('#app-name').value.trim(), kind: k,
        scopes: scopes };
      var webhook = CB.$('#app-webhook').value.trim();
      if (webhook) body.webhook_url = webhook;
      if (k === 'patient_facing') body.redirect_uris = lines(CB.$('#app-redirects').value);
      else {
        try { body.jwks = JSON.parse(CB.$('#app-jwks').value || 'null'); } catch (e) {
          CB.show('error', '公钥不是有效的 JSON The JWK Set is not valid JSON', 'bad_jwks');
          return;
        }
      }
      CB.busy(CB.$('#app-submit'), CB.post(APPS, body).then(function (app) {
        CB.flashNext('success', '已提交，等待平台审核 Submitted: waiting for a platform admin');
        location.assign('/portal/apps/' + app.id);
      })).catch(CB.showError);
    });
  }

  // --- /portal/apps/{id} ------------------------------------------------------------------------------------
  function appPage() {
    var id = CB.data.appId;
    var url = APPS + '/' + id;
    var admin = CB.data.role === 'platform_admin';
    var app = null;

    function render(a) {
      app = a;
      document.title = a.name + ' · CareBridge';
      CB.fill(CB.$('#crumb-name'), a.name);
      CB.fill(CB.$('#app-title'), [a.name, ' ', h('small', {}, a.organisation)]);
      CB.fill(CB.$('#app-status'), statusBadge(a.status));
      var reason = CB.$('#app-reason');
      reason.hidden = !a.status_reason;
      CB.fill(reason, a.status_reason ? '理由 Reason: ' + a.status_reason : '');
      CB.fill(CB.$('#client-id'), a.client_id);
      CB.fill(CB.$('#app-kind'), KIND[a.kind]);
      CB.fill(CB.$('#app-channel'), a.channel);
      CB.$('#edit-organisation').value = a.organisation;
      CB.$('#edit-name').value = a.name;
      CB.$('#edit-redirects').value = a.redirect_uris.join('\n');
      CB.$('#edit-jwks').value = a.jwks ? JSON.stringify(a.jwks, null, 2) : '';
      CB.$('#edit-webhook').value = a.webhook_url || '';
      document.querySelectorAll('#keys-form [data-kind]').forEach(function (el) { el.hidden = el.dataset.kind !== a.kind; });
      if (admin) {
        CB.$('#keys-save').hidden = true;
        document.querySelectorAll('#keys-form input, #keys-form textarea').forEach(function (el) { el.readOnly = true; });
        CB.$('#limit-rate').value = a.rate_limit_per_second || '';
        CB.$('#limit-quota').value = a.daily_quota || '';
      }
      CB.fill(CB.$('#scope-table tbody'), a.scopes.map(function (s) {
        return h('tr', {}, h('td', {}, h('code', {}, s)), h('td', {}, scopeMeaning(s)));
      }));
    }
    function load() { return CB.get(url).then(render); }

    CB.$('#keys-form').addEventListener('submit', function (event) {
      event.preventDefault();
      var body = { organisation: CB.$('#edit-organisation').value.trim(), name: CB.$('#edit-name').value.trim(),
        webhook_url: CB.$('#edit-webhook').value.trim() || null };
      if (app.kind === 'patient_facing') body.redirect_uris = lines(CB.$('#edit-redirects').value);
      else {
        try { body.jwks = JSON.parse(CB.$('#edit-jwks').value); } catch (e) {
          CB.show('error', '公钥不是有效的 JSON The JWK Set is not valid JSON', 'bad_jwks');
          return;
        }
      }
      CB.busy(CB.$('#keys-save'), CB.patch(url, body).then(function (a) {
        render(a);
        CB.show('success', '已保存 Saved');
      })).catch(CB.showError);
    });

    if (admin) {
      CB.$('#review-form').querySelectorAll('button[data-decision]').forEach(function (button) {
        button.addEventListener('click', function () {
          var reason = CB.$('#review-reason').value.trim();
          var body = { decision: button.dataset.decision };
          if (reason) body.reason = reason;
          CB.busy(button, CB.post(url + '/review', body).then(function (a) {
            render(a);
            CB.show('success', '已处理 Done: ' + a.status);
            return loadSandbox();
          })).catch(CB.showError);
        });
      });
      CB.$('#limits-form').addEventListener('submit', function (event) {
        event.preventDefault();
        var rate = CB.$('#limit-rate').value, quota = CB.$('#limit-quota').value;
        CB.put(url + '/limits', { rate_limit_per_second: rate ? parseInt(rate, 10) : null,
          daily_quota: quota ? parseInt(quota, 10) : null })
          .then(function (a) { render(a); CB.show('success', '限额已更新 Limits saved'); return loadUsage(); })
          .catch(CB.showError);
      });
    }

    function resetButton() {
      var button = h('button', { type: 'button', class: 'btn small danger', id: 'sandbox-reset' }, '重置沙箱 Reset the sandbox');
      button.addEventListener('click', function () {
        CB.hideMessage();
        if (!window.confirm('取消沙箱中所有已预约的号并解除爽约限制？ Cancel every booked appointment in the sandbox and lift its no-show blocks?')) return;
        CB.busy(button, CB.api('POST', url + '/sandbox/reset')).then(function (done) {
          CB.show('success', '沙箱已重置：取消 ' + done.appointments_cancelled + ' 个预约，解除 ' + done.blocks_lifted +
            ' 个限制 Sandbox reset: ' + done.appointments_cancelled + ' appointments cancelled, ' + done.blocks_lifted + ' blocks lifted');
        }).catch(CB.showError);
      });
      return button;
    }

    function loadSandbox() {
      return CB.get(url + '/sandbox', { stay: true }).then(function (box) {
        CB.fill(CB.$('#sandbox-body'), [
          h('dl', { class: 'facts' },
            h('dt', {}, '医院 Hospital'), h('dd', { id: 'sandbox-hospital' }, box.hospital_name),
            h('dt', {}, 'FHIR'), h('dd', {}, h('code', {}, box.organization)),
            h('dt', {}, '科室 Departments'), h('dd', {}, box.departments.map(function (d) { return d.name; }).join('、')),
            h('dt', {}, '医生 Practitioners'), h('dd', {}, box.practitioners.map(function (p) { return p.name; }).join('、')),
            h('dt', {}, '排班至 Schedules until'), h('dd', {}, box.schedules_until)),
          h('h3', { class: 'mt' }, '测试患者账号 Test patient accounts'),
          h('p', { class: 'muted' }, '虚构人员，仅用于沙箱：在授权同意页以此登录。Fictitious people for the sandbox: sign in with these on the consent page.'),
          h('table', { id: 'test-patients' }, h('thead', {}, h('tr', {}, h('th', {}, '用户名 Username'),
            h('th', {}, '密码 Password'), h('th', {}, '就诊人 Patients'))),
          h('tbody', {}, box.test_patients.map(function (t) {
            return h('tr', {}, h('td', {}, h('code', { class: 'secret' }, t.username)),
              h('td', {}, h('code', { class: 'secret' }, t.password)),
              h('td', {}, t.patients.map(function (p) {
                return h('div', {}, CB.label('relation', p.relation) + ' ' + p.name + ' ', h('small', { class: 'mono' }, 'Patient/' + p.id));
              })));
          }))),
          h('p', { class: 'muted mt' }, '预约与爽约记录可随时清空重来（排班、人员和历史保留）。Start again at any time: bookings are cancelled and no-show blocks lifted (sessions, people and history stay). ', resetButton())
        ]);
      }).catch(function (err) {
        if (!(err instanceof CB.ApiError && err.status === 404)) CB.showError(err);
      });
    }

    function loadSubscriptions() {
      return CB.get(url + '/webhooks').then(function (rows) {
        CB.fill(CB.$('#subscription-table tbody'), rows.length ? rows.map(function (s) {
          var end = h('button', { type: 'button', class: 'btn small danger', onclick: function () {
            CB.busy(end, del(url + '/webhooks/' + s.id)).then(loadSubscriptions).catch(CB.showError);
          } }, '取消 End');
          return h('tr', { dataset: { subscriptionId: s.id } }, h('td', {}, s.event_types.join(', ')),
            h('td', {}, h('code', {}, s.url)), h('td', {}, when(s.created_at)), h('td', {}, admin ? null : end));
        }) : h('tr', {}, h('td', { colspan: 4, class: 'empty' }, '没有订阅 No subscriptions')));
      });
    }
    CB.$('#subscribe-form').addEventListener('submit', function (event) {
      event.preventDefault();
      var body = { event_types: CB.$('#sub-types').value.split(',').map(function (t) { return t.trim(); }).filter(Boolean) };
      var target = CB.$('#sub-url').value.trim();
      if (target) body.url = target;
      var button = event.target.querySelector('button');
      CB.busy(button, CB.post(url + '/webhooks', body).then(function (s) {
        var box = CB.$('#secret-box');
        CB.fill(box, [h('span', { class: 'text' }, '签名密钥只显示这一次，请妥善保存 The signing secret, shown this once: ',
          h('code', { class: 'secret', id: 'webhook-secret' }, s.secret))]);
        box.hidden = false;
        return loadSubscriptions();
      })).catch(CB.showError);
    });

    function loadDeliveries() {
      var status = CB.$('#delivery-filter').value;
      return CB.get(url + '/webhook-deliveries?limit=100' + (status ? '&status=' + status : '')).then(function (rows) {
        CB.fill(CB.$('#delivery-table tbody'), rows.length ? rows.map(function (d) {
          var s = DELIVERY[d.status] || [d.status, ''];
          var again = h('button', { type: 'button', class: 'btn small secondary', onclick: function () {
            CB.busy(again, CB.post(url + '/webhook-deliveries/' + d.id + '/redeliver')).then(loadDeliveries).catch(CB.showError);
          } }, '重新投递 Redeliver');
          var answer = d.last_status_code ? 'HTTP ' + d.last_status_code : (d.last_error || '—');
          if (d.last_ms !== null && d.last_ms !== undefined) answer += ' · ' + Math.round(d.last_ms) + ' ms';
          return h('tr', { dataset: { deliveryId: d.id, status: d.status } }, h('td', {}, when(d.created_at)),
            h('td', {}, h('code', {}, d.event_type)), h('td', {}, h('span', { class: 'badge ' + s[1] }, s[0])),
            h('td', { class: 'num' }, d.attempts), h('td', {}, answer), h('td', {}, when(d.next_attempt_at)),
            h('td', {}, admin ? null : again));
        }) : h('tr', {}, h('td', { colspan: 7, class: 'empty' }, '没有投递 No deliveries')));
      });
    }
    CB.$('#delivery-filter').addEventListener('change', function () { loadDeliveries().catch(CB.showError); });

    function loadUsage() {
      var days = parseInt(CB.$('#usage-days').value, 10);
      return CB.get(url + '/usage?days=' + days).then(function (u) {
        var labels = [];
        for (var i = 0; i < days; i++) labels.push(CB.addDays(u.since, i));
        var okCalls = labels.map(function () { return 0; }), errors = labels.map(function () { return 0; });
        var endpoints = {};
        u.rows.forEach(function (r) {
          var at = labels.indexOf(r.day);
          var bad = r.status >= 400;
          if (at >= 0) (bad ? errors : okCalls)[at] += r.count;
          var e = endpoints[r.endpoint] || (endpoints[r.endpoint] = { calls: 0, errors: 0, ms: 0, max: 0 });
          e.calls += r.count;
          if (bad) e.errors += r.count;
          e.ms += r.total_ms;
          e.max = Math.max(e.max, r.max_ms);
        });
        CB.fill(CB.$('#usage-summary'), '今日调用 Calls today: ' + u.calls_today + ' / ' + u.daily_quota +
          ' · 限速 Rate limit: ' + u.rate_limit_per_second + '/s');
        window.CBChart.line(CB.$('#usage-chart'), [{ name: '成功 OK', values: okCalls }, { name: '错误 Errors', values: errors }],
          { labels: labels });
        var names = Object.keys(endpoints).sort(function (a, b) { return endpoints[b].calls - endpoints[a].calls; });
        CB.fill(CB.$('#endpoint-table tbody'), names.length ? names.map(function (n) {
          var e = endpoints[n];
          return h('tr', {}, h('td', {}, h('code', {}, n)), h('td', { class: 'num' }, e.calls),
            h('td', { class: 'num' }, e.errors), h('td', { class: 'num' }, (e.ms / e.calls).toFixed(1)),
            h('td', { class: 'num' }, e.max.toFixed(1)));
        }) : h('tr', {}, h('td', { colspan: 5, class: 'empty' }, '还没有调用 No calls yet')));
      });
    }
    CB.$('#usage-days').addEventListener('change', function () { loadUsage().catch(CB.showError); });

    function loadAlerts() {
      return CB.get(url + '/alerts').then(function (rows) {
        CB.fill(CB.$('#alert-list'), rows.length ? rows.map(function (a) {
          return h('li', { class: 'list-item', dataset: { kind: a.kind } },
            h('span', { class: 'badge ' + (a.level === 'critical' ? 'danger' : 'warn') }, a.level), ' ', a.message);
        }) : h('li', { class: 'empty' }, '没有告警 No alerts'));
      });
    }

    load().then(function () {
      return Promise.all([loadSandbox(), loadSubscriptions(), loadDeliveries(), loadUsage(), loadAlerts()]);
    }).catch(CB.showError);
  }

  // --- /portal/docs/fhir ------------------------------------------------------------------------------------
  function fhirPage() {
    fetch('/fhir/R4/metadata', { headers: { Accept: 'application/fhir+json' } }).then(function (r) { return r.json(); })
      .then(function (cap) {
        var rest = cap.rest[0];
        CB.fill(CB.$('#fhir-summary'), cap.software.name + ' ' + cap.software.version + ' · FHIR ' + cap.fhirVersion +
          ' · ' + cap.format.join(', '));
        var oauth = ((rest.security.extension || [])[0] || {}).extension || [];
        CB.fill(CB.$('#fhir-security'), [h('h2', {}, '安全 Security'),
          h('p', {}, (rest.security.service || []).map(function (s) { return s.coding[0].code; }).join(', ') + ' — ' +
            (rest.security.description || '')),
          h('dl', { class: 'facts' }, oauth.map(function (e) {
            return [h('dt', {}, e.url), h('dd', {}, h('code', {}, e.valueUri))];
          }))]);
        CB.fill(CB.$('#fhir-resources tbody'), rest.resource.map(function (res) {
          return h('tr', { dataset: { resource: res.type } }, h('td', {}, h('strong', {}, res.type)),
            h('td', {}, (res.interaction || []).map(function (i) { return i.code; }).join(', ')),
            h('td', { class: 'fhir-params' }, (res.searchParam || []).map(function (p) {
              return h('code', { title: p.documentation || '' }, p.name + ' (' + p.type + ')');
            })),
            h('td', { class: 'fhir-params' }, (res.searchInclude || []).map(function (i) { return h('code', {}, i); })));
        }));
      }).catch(CB.showError);
  }

  var pages = { 'portal-signup': signupPage, 'portal-apps': appsPage, 'portal-new-app': newAppPage,
    'portal-app': appPage, 'portal-fhir': fhirPage };
  if (pages[CB.page]) pages[CB.page]();
})();
