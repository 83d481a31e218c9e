/* CareBridge pages: the shared helpers every page script uses (window.CB). No framework, no CDN. */
(function () {
  'use strict';

  var body = document.body;
  var UNSAFE = { POST: 1, PUT: 1, PATCH: 1, DELETE: 1 };

  // Chinese first, English after: the API's message stays visible for anything not listed here.
  var ERROR_TEXT = {
    slot_full: '该时段已约满 This slot is full',
    already_booked: '该就诊人在此出诊已有预约 Already booked in this session',
    booking_window_closed: '当前不可预约该时段 Booking is closed for this slot',
    schedule_stopped: '该出诊已停诊 This session has been stopped',
    limit_exceeded: '已达预约上限 Booking limit reached',
    booking_blocked: '因爽约暂停预约 Booking blocked after no-shows',
    cancellation_deadline_passed: '已过取消/改约截止时间 Too late to cancel or change',
    not_cancellable: '该预约不能取消 This appointment cannot be cancelled',
    not_reschedulable: '该预约不能改约 This appointment cannot be rescheduled',
    not_checkable: '该预约不能签到 This appointment cannot be checked in',
    not_visit_day: '请在就诊当天、出诊结束前签到 Check in on the day, before the session ends',
    insufficient_capacity: '号源不足，无法调整 Not enough free places to move',
    same_channel: '来源与目标渠道相同 Source and target channel are the same',
    invalid_credentials: '用户名或密码错误 Wrong username or password',
    login_throttled: '登录失败次数过多，请稍后再试 Too many failed logins, try later',
    invalid_id_number: '身份证号无效 Invalid ID number',
    self_exists: '已添加过本人 You already added yourself',
    already_linked: '该就诊人已在您的账号下 Already on your account',
    identity_mismatch: '姓名与身份证号不符 Name does not match the ID number',
    already_lifted: '已解除 Already lifted',
    template_exists: '模板已存在 Template exists',
    visit_type_exists: '号别已存在 Visit type exists',
    not_your_session: '这不是您的出诊 Not your session',
    other_hospital: '只能操作本院数据 Only your own hospital',
    unknown_channel: '未知渠道 Unknown channel',
    bad_date_range: '日期范围无效 Invalid date range',
    same_slot: '已在该时段 Already in this slot',
    idempotency_key_reused: '请求重复 Duplicate request',
    too_many_requests: '请求过于频繁，请稍后再试 Too many requests, try later',
    not_authenticated: '请先登录 Please log in',
    csrf_failed: '页面已过期，请刷新后重试 The page expired: reload and try again',
    forbidden: '无权执行此操作 Not allowed',
    role_not_allowed: '当前身份无权执行此操作 Your role may not do this',
    not_found: '未找到 Not found',
    invalid_input: '输入有误 Invalid input',
    username_taken: '用户名已被使用 Username taken',
    network_error: '网络错误，请检查网络后重试 Network error: check your connection and retry',
    internal_error: '服务器出错，请稍后再试 Server error, try again later'
  };

  function ApiError(status, code, message, details) {
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.message = message;
    this.details = details || {};
  }
  ApiError.prototype = Object.create(Error.prototype);

  function cookie(name) {
    var parts = document.cookie ? document.cookie.split('; ') : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf('=');
      if (parts[i].slice(0, eq) === name) return decodeURIComponent(parts[i].slice(eq + 1));
    }
    return '';
  }

  function loginUrl() {
    return '/login?next=' + encodeURIComponent(location.pathname + location.search);
  }

  /* Calls the JSON API with the session cookie; unsafe methods echo the CSRF cookie.
     Resolves to the parsed body (null for 204); rejects with ApiError. A 401 sends the browser to /login
     unless opts.stay is set. */
  function api(method, path, payload, opts) {
    opts = opts || {};
    var headers = { Accept: 'application/json' };
    if (payload !== undefined && payload !== null) headers['Content-Type'] = 'application/json';
    if (UNSAFE[method]) headers['X-CSRF-Token'] = cookie('cb_csrf');
    Object.keys(opts.headers || {}).forEach(function (k) { headers[k] = opts.headers[k]; });
    return fetch(path, {
      method: method,
      credentials: 'same-origin',
      headers: headers,
      body: payload !== undefined && payload !== null ? JSON.stringify(payload) : undefined
    }).catch(function () {
      throw new ApiError(0, 'network_error', 'network error', {});
    }).then(function (response) {
      return response.text().then(function (text) {
        var data = null;
        if (text) {
          try { data = JSON.parse(text); } catch (e) { data = null; }
        }
        if (response.ok) return data;
        var err = (data && data.error) || {};
        var error = new ApiError(response.status, err.code || 'http_' + response.status,
          err.message || response.statusText || 'request failed', err.details);
        if (response.status === 401 && !opts.stay) {
          location.assign(loginUrl());
        }
        throw error;
      });
    });
  }
  var get = function (path, opts) { return api('GET', path, null, opts); };
  var post = function (path, payload, opts) { return api('POST', path, payload === undefined ? {} : payload, opts); };
  var put = function (path, payload, opts) { return api('PUT', path, payload, opts); };
  var patch = function (path, payload, opts) { return api('PATCH', path, payload, opts); };

  /* A DOM element: h('a', {href: '/x', class: 'btn', onclick: fn}, 'text', child, [more]). Text is never HTML. */
  function h(tag, attrs) {
    var el = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === null || value === undefined || value === false) return;
      if (key.slice(0, 2) === 'on' && typeof value === 'function') el.addEventListener(key.slice(2), value);
      else if (key === 'class') el.className = value;
      else if (key === 'text') el.textContent = value;
      else if (key === 'dataset') Object.keys(value).forEach(function (k) { el.dataset[k] = value[k]; });
      else if (value === true) el.setAttribute(key, '');
      else el.setAttribute(key, String(value));
    });
    append(el, Array.prototype.slice.call(arguments, 2));
    return el;
  }
  function append(el, children) {
    children.forEach(function (child) {
      if (child === null || child === undefined || child === false) return;
      if (Array.isArray(child)) append(el, child);
      else el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    });
  }
  function fill(el, children) {
    el.replaceChildren();
    append(el, Array.isArray(children) ? children : [children]);
    return el;
  }
  var $ = function (selector, root) { return (root || document).querySelector(selector); };

  /* The message bar under the top bar. */
  var flash = document.getElementById('flash');
  var flashTimer = null;
  function show(kind, text, code) {
    if (!flash) return;
    clearTimeout(flashTimer);
    flash.className = 'flash ' + kind;
    fill(flash, [
      h('span', { class: 'text' }, text, code ? [' ', h('code', { text: '[' + code + ']' })] : null),
      h('button', { type: 'button', 'aria-label': '关闭 Close', onclick: hideMessage }, '×')
    ]);
    flash.hidden = false;
    if (kind !== 'error') flashTimer = setTimeout(hideMessage, 6000);
  }
  function hideMessage() { if (flash) flash.hidden = true; }
  function showError(err) {
    if (!(err instanceof ApiError)) {
      console.error(err); // a bug in a page script: still tell the user something went wrong
      show('error', ERROR_TEXT.internal_error + ' (' + (err && err.message) + ')', 'script_error');
      return;
    }
    var known = ERROR_TEXT[err.code];
    var text = known ? known + (err.message && known.indexOf(err.message) < 0 ? ' — ' + err.message : '') : err.message;
    var fields = (err.details && err.details.errors) || [];
    if (fields.length) text += '：' + fields.map(function (f) { return f.field + ' ' + f.message; }).join('; ');
    show('error', text, err.code);
  }

  /* Hospital-local formatting. Dates from the API are UTC ISO strings; service dates are YYYY-MM-DD. */
  var zone = body.dataset.tz || 'Asia/Shanghai';
  var WEEKDAYS = ['周日', '周一', '周二', '周三', '周四', '周五', '周六'];
  function fmtTime(iso, tz) {
    return new Intl.DateTimeFormat('zh-CN', { timeZone: tz || zone, hour: '2-digit', minute: '2-digit',
      hourCycle: 'h23' }).format(new Date(iso));
  }
  function fmtDateTime(iso, tz) {
    return new Intl.DateTimeFormat('zh-CN', { timeZone: tz || zone, month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(new Date(iso));
  }
  function parseDay(day) { var p = day.split('-'); return new Date(Date.UTC(+p[0], +p[1] - 1, +p[2])); }
  function addDays(day, n) {
    var d = parseDay(day);
    d.setUTCDate(d.getUTCDate() + n);
    return d.toISOString().slice(0, 10);
  }
  function weekday(day) { return WEEKDAYS[parseDay(day).getUTCDay()]; }
  function fmtDay(day) { return day.slice(5).replace('-', '/') + ' ' + weekday(day); }
  function money(fen) { return '¥' + (fen / 100).toFixed(2); }

  var LABELS = {
    session: { morning: '上午 Morning', afternoon: '下午 Afternoon', evening: '晚上 Evening' },
    status: { booked: '已预约 Booked', checked_in: '已签到 Checked in', completed: '已完成 Completed',
      cancelled: '已取消 Cancelled', no_show: '爽约 No-show', open: '出诊 Open', stopped: '停诊 Stopped' },
    queue: { waiting: '候诊 Waiting', called: '就诊中 Called', done: '已完成 Done', left: '已离开 Left',
      not_checked_in: '未签到 Not checked in' },
    channel: { platform: '平台 Platform', onsite: '现场 On-site', referral: '转诊 Referral' },
    title: { chief_physician: '主任医师', associate_chief_physician: '副主任医师', attending_physician: '主治医师',
      resident_physician: '住院医师', physician: '医师' },
    level: { tertiary: '三级', secondary: '二级', primary: '一级' },
    relation: { self: '本人', child: '子女', parent: '父母', spouse: '配偶', other: '其他' }
  };
  function label(kind, value) {
    var table = LABELS[kind] || {};
    if (kind === 'channel' && value && value.indexOf('partner:') === 0) return '合作方 ' + value.slice(8);
    return table[value] || value || '';
  }
  var STATUS_CLASS = { booked: 'brand', checked_in: 'ok', completed: '', cancelled: 'danger', no_show: 'warn',
    open: 'ok', stopped: 'danger', waiting: 'brand', called: 'ok', done: '', left: 'warn' };
  function badge(kind, value) {
    return h('span', { class: 'badge ' + (STATUS_CLASS[value] || ''), dataset: { status: value } }, label(kind, value));
  }

  /* The platform's clock as the page saw it (tests and demos shift it): browser time plus the skew at load. */
  var skew = body.dataset.now ? Date.parse(body.dataset.now) - Date.now() : 0;
  function now() { return new Date(Date.now() + skew); }

  /* A random key for Idempotency-Key: crypto.randomUUID needs a secure context, getRandomValues does not. */
  function newKey() {
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return (b + 256).toString(16).slice(1); }).join('');
  }

  /* Disable a button while a promise runs, so a double tap cannot send twice. */
  function busy(button, promise) {
    if (button) button.disabled = true;
    return promise.finally(function () { if (button) button.disabled = false; });
  }

  /* A message to show on the next page (after a redirect). */
  function flashNext(kind, text) {
    try { sessionStorage.setItem('cb-flash', JSON.stringify([kind, text])); } catch (e) { /* private mode */ }
  }
  try {
    var pending = sessionStorage.getItem('cb-flash');
    if (pending) {
      sessionStorage.removeItem('cb-flash');
      pending = JSON.parse(pending);
      show(pending[0], pending[1]);
    }
  } catch (e) { /* private mode */ }

  function logout() {
    return post('/api/v1/auth/logout', null, { stay: true }).catch(function () { /* already gone */ })
      .then(function () { location.assign('/login'); });
  }
  var logoutButton = document.getElementById('logout-button');
  if (logoutButton) logoutButton.addEventListener('click', logout);

  window.CB = {
    api: api, get: get, post: post, put: put, patch: patch, ApiError: ApiError, cookie: cookie,
    h: h, fill: fill, $: $, show: show, showError: showError, hideMessage: hideMessage, flashNext: flashNext,
    fmtTime: fmtTime, fmtDateTime: fmtDateTime, fmtDay: fmtDay, addDays: addDays, weekday: weekday, money: money,
    label: label, badge: badge, newKey: newKey, now: now, busy: busy, logout: logout,
    today: body.dataset.today, zone: zone, page: body.dataset.page, data: body.dataset
  };
})();
