/* Doctor: the online clinic. Inbox on the left (refreshed every 5 s), the selected consultation in the middle
   (pre-consultation form and the chat over the WebSocket of docs/chat.md), the outpatient record, the prescription
   with its live checks (docs/prescribing.md) and a follow-up reminder. ?c=<consultation id> opens one. */
(function () {
  'use strict';
  var CB = window.CB;
  var h = CB.h;
  var $ = CB.$;

  var INBOX_MS = 5000;
  var CHECK_DELAY_MS = 300;
  var PING_MS = 25000;
  var TYPING_SEND_MS = 3000;
  var TYPING_SHOW_MS = 4000;
  var ACTIVE = { requested: 1, accepted: 1, in_progress: 1 };
  var FINAL_CLOSE = { 4400: 1, 4401: 1, 4403: 1, 4404: 1 }; // the socket will not get better by reconnecting
  var EDITABLE_RX = { new: 1, draft: 1, rejected: 1 };
  var RECORD_FIELDS = ['chief_complaint', 'present_illness', 'past_history', 'allergies', 'physical_findings', 'advice'];

  var STATUS = {
    requested: '待接诊 Requested', accepted: '已接诊 Accepted', in_progress: '问诊中 In progress',
    closed: '已结束 Closed', rejected: '已拒绝 Declined', expired: '已过期 Expired', cancelled: '已取消 Cancelled'
  };
  var STATUS_CLASS = { requested: 'warn', accepted: 'brand', in_progress: 'ok', rejected: 'danger', cancelled: 'danger' };
  var KIND = { text: '图文 Text', video: '视频 Video' };
  var SEX = { female: '女', male: '男' };
  var RX_STATUS = {
    new: '新处方 New, not saved', draft: '草稿 Draft', pending_review: '待药师审核 Pending review',
    approved: '审核通过 Approved', rejected: '药师驳回 Rejected', dispensed: '已发药 Dispensed',
    expired: '已过期 Expired', cancelled: '已作废 Cancelled'
  };
  var RX_CLASS = { draft: 'brand', pending_review: 'warn', approved: 'ok', dispensed: 'ok', rejected: 'danger',
    cancelled: 'danger' };
  var RECORD_STATUS = { draft: '草稿 draft', signed: '已签名 signed' };
  var INTEGRITY = { verified: '已验证 verified', tampered: '被篡改 tampered', unsigned: '未签名 unsigned' };
  var SPECIAL = { narcotic: '【麻】', psychotropic_1: '【精】', psychotropic_2: '【精】', toxic: '【毒】',
    radioactive: '【放】' };
  var FREQUENCIES = [['qd', '每日一次'], ['bid', '每日两次'], ['tid', '每日三次'], ['qid', '每日四次'],
    ['q6h', '每6小时'], ['q8h', '每8小时'], ['q12h', '每12小时'], ['qn', '每晚'], ['qod', '隔日一次'], ['qw', '每周一次']];
  var ROUTES = [['oral', '口服'], ['sublingual', '舌下'], ['inhaled', '吸入'], ['topical', '外用'],
    ['ophthalmic', '眼用'], ['nasal', '鼻用'], ['rectal', '直肠'], ['sc', '皮下注射'], ['im', '肌内注射'],
    ['iv', '静脉注射']];
  var LEVEL_ORDER = { block: 0, warning: 1, info: 2 };

  // Chinese first for the codes these forms meet; app.js keeps the API's message after it.
  var ERROR_TEXT = {
    prescription_blocked: '处方存在阻断项，不能签名 The prescription is blocked',
    override_required: '每条警告都需填写超越理由 Each warning needs an override reason',
    unknown_override: '超越理由与当前警告不符 The override reasons answer no current warning',
    reauthentication_failed: '密码错误，未签名 Wrong password: not signed',
    record_signed: '病历已签名，修改需填写修改原因 The record is signed: give a reason to amend it',
    nothing_to_amend: '尚无已签名病历，无需修改原因 Nothing signed to amend',
    no_draft: '没有可签名的病历草稿 No draft to sign',
    record_not_writable: '开始问诊后才能书写病历 The record is written once the consultation has started',
    bad_consultation_state: '问诊状态已变化，请刷新 The consultation changed state',
    consultation_expired: '该问诊请求已过期 This request has lapsed',
    consultation_not_open: '问诊未在进行中 The consultation is not in progress',
    consultation_not_in_progress: '问诊进行中才能开处方 Prescriptions are written during the consultation',
    consultation_not_started: '问诊开始后才能设置复诊 Follow-ups are set once the consultation has started',
    prescription_not_draft: '该处方已不是草稿 This prescription is no longer a draft',
    drug_not_in_formulary: '药品不在本院目录 The drug is not in this hospital\'s formulary',
    duplicate_diagnosis: '诊断重复 A diagnosis is listed twice',
    unknown_icd10_code: '不是有效的 ICD-10 编码 Not an ICD-10 code',
    too_many_diagnoses: '诊断过多 Too many diagnoses',
    bad_follow_up_date: '复诊日期须在明天至一年内 Pick a date from tomorrow to a year ahead',
    message_too_long: '消息过长 The message is too long',
    too_many_frames: '发送过快 Sending too fast'
  };

  var S = {
    id: null, // the selected consultation
    c: null, // its detail
    drugs: [],
    drugById: {},
    records: [],
    recordSnapshot: '',
    rx: { id: null, status: 'new', revision: null },
    rxSnapshot: '',
    rxDiagTouched: false,
    findings: [],
    overrides: {}, // finding key -> the doctor's reason, kept across re-renders
    checkTimer: null,
    checkSeq: 0,
    inboxOk: true,
    inboxBusy: false,
    inboxAgain: false
  };

  function fail(err) {
    if (err instanceof CB.ApiError && ERROR_TEXT[err.code] && (err.message || '').indexOf(ERROR_TEXT[err.code]) < 0) {
      err.message = ERROR_TEXT[err.code] + (err.message ? ' — ' + err.message : '');
    }
    CB.showError(err);
  }
  function localError(text, code) { CB.show('error', text, code); }
  function api(path) { return '/api/v1/consultations/' + encodeURIComponent(S.id) + path; }
  function val(sel) { return $(sel).value.trim(); }
  function orNull(text) { return text ? text : null; }
  function parseCodes(text) {
    return text.split(/[\s,，;；、]+/).map(function (s) { return s.trim().toUpperCase(); })
      .filter(function (s) { return s; });
  }
  function setStatusBadge(el, table, classes, status) {
    el.dataset.status = status;
    el.className = 'badge ' + (classes[status] || '');
    el.textContent = table[status] || status;
  }
  function statusBadge(status) {
    return h('span', { class: 'badge ' + (STATUS_CLASS[status] || ''), dataset: { status: status } },
      STATUS[status] || status);
  }
  function short(id) { return String(id).slice(-6).toUpperCase(); }

  /* ---------------------------------------------------------------- inbox */

  var inbox = $('#inbox');
  var inboxFilter = $('#inbox-filter');

  function inboxItem(c) {
    var p = c.patient || {};
    var who = [p.name || '患者 Patient', p.sex ? (SEX[p.sex] || p.sex) : null, p.age !== undefined ? p.age + '岁' : null]
      .filter(function (x) { return x; }).join(' · ');
    var selected = c.id === S.id;
    return h('div', {
      class: 'inbox-item' + (selected ? ' selected' : ''), role: 'button', tabindex: '0',
      'aria-current': selected ? 'true' : null, dataset: { id: c.id, status: c.status },
      onclick: function () { select(c.id); },
      onkeydown: function (e) { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); select(c.id); } }
    },
    h('div', { class: 'inbox-top' }, h('b', { class: 'inbox-name' }, who), statusBadge(c.status)),
    c.complaint ? h('div', { class: 'inbox-complaint' }, c.complaint.length > 40 ? c.complaint.slice(0, 40) + '…' :
      c.complaint) : null,
    h('div', { class: 'inbox-meta' }, h('span', { class: 'inbox-kind', dataset: { kind: c.kind } }, KIND[c.kind] || c.kind),
      ' · ', h('time', { datetime: c.requested_at }, CB.fmtDateTime(c.requested_at))));
  }

  function renderInbox(rows) {
    var active = rows.filter(function (c) { return ACTIVE[c.status]; });
    var ended = rows.filter(function (c) { return !ACTIVE[c.status]; });
    var parts = [];
    if (!rows.length) parts.push(h('p', { class: 'empty' }, '暂无问诊 No consultations'));
    if (active.length) parts.push(h('h3', { class: 'inbox-group' }, '待处理 Active (' + active.length + ')'), active.map(inboxItem));
    if (ended.length) parts.push(h('h3', { class: 'inbox-group' }, '已结束 Ended (' + ended.length + ')'), ended.map(inboxItem));
    CB.fill(inbox, parts);
    // the selected consultation changed state elsewhere (expired, cancelled by the patient): load it again
    var mine = S.c && rows.filter(function (c) { return c.id === S.id; })[0];
    if (mine && mine.status !== S.c.status) reloadConsultation();
  }

  function refreshInbox() {
    if (S.inboxBusy) { S.inboxAgain = true; return Promise.resolve(); } // once more when this one is done
    S.inboxBusy = true;
    S.inboxAgain = false;
    var q = inboxFilter.value ? '?status=' + encodeURIComponent(inboxFilter.value) : '';
    return CB.get('/api/v1/consultations' + q).then(function (rows) {
      S.inboxOk = true;
      renderInbox(rows);
      $('#inbox-refreshed').textContent = '自动刷新 Auto-refresh · ' + CB.fmtTime(CB.now().toISOString());
    }).catch(function (err) {
      if (S.inboxOk) fail(err); // say it once, not every 5 s
      S.inboxOk = false;
    }).finally(function () {
      S.inboxBusy = false;
      if (S.inboxAgain) refreshInbox();
    });
  }

  function markSelected() {
    Array.prototype.forEach.call(inbox.querySelectorAll('.inbox-item'), function (el) {
      var on = el.dataset.id === S.id;
      el.classList.toggle('selected', on);
      if (on) el.setAttribute('aria-current', 'true'); else el.removeAttribute('aria-current');
    });
  }

  /* ---------------------------------------------------------------- the consultation */

  function select(id) {
    if (!id) return;
    if (id === S.id) { markSelected(); return; }
    S.id = id;
    S.c = null;
    history.replaceState(null, '', location.pathname + '?c=' + encodeURIComponent(id));
    markSelected();
    CB.hideMessage();
    $('#wb-empty').hidden = true;
    $('#wb-consultation').hidden = false;
    CB.fill($('#c-title'), ['加载中… ', h('small', {}, 'Loading…')]);
    CB.fill($('#c-meta'), []);
    CB.fill($('#c-form'), []);
    CB.fill($('#c-attachments'), []);
    setStatusBadge($('#status'), STATUS, STATUS_CLASS, '');
    showActions('');
    S.records = [];
    renderRecord();
    fillRecordForm(null);
    newRx(true);
    CB.fill($('#rx-list'), []);
    CB.fill($('#followup-list'), []);
    $('#followup-form').reset();
    chat.open(id);
    reloadConsultation().then(function () {
      if (id !== S.id || !S.c) return;
      loadAttachments();
      loadRecord();
      loadRxList();
      loadFollowups();
    });
  }

  function reloadConsultation() {
    var id = S.id;
    return CB.get(api('')).then(function (c) {
      if (id !== S.id) return;
      S.c = c;
      renderConsultation();
    }).catch(function (err) {
      if (id !== S.id) return;
      fail(err);
      if (!S.c) CB.fill($('#c-title'), ['无法打开该问诊 ', h('small', {}, 'Cannot open this consultation')]);
    });
  }

  function renderConsultation() {
    var c = S.c;
    var p = c.patient || {};
    CB.fill($('#c-title'), [p.name || '患者', ' ', h('small', {}, [p.sex ? SEX[p.sex] || p.sex : '', p.age !== undefined ?
      ' ' + p.age + '岁' : ''].join(''))]);
    CB.fill($('#c-meta'), [KIND[c.kind] || c.kind, ' · ', c.department_name || '', ' · 申请 Requested ',
      CB.fmtDateTime(c.requested_at), c.started_at ? ' · 开始 Started ' + CB.fmtDateTime(c.started_at) : '',
      c.ended_at ? ' · 结束 Ended ' + CB.fmtDateTime(c.ended_at) + (c.end_reason ? '（' + c.end_reason + '）' : '') : '',
      c.guardian_name ? ' · 监护人 Guardian ' + c.guardian_name : '',
      c.appointment_id ? ' · 网络门诊预约 Booked online session' : '']);
    setStatusBadge($('#status'), STATUS, STATUS_CLASS, c.status);
    showActions(c.status);
    var d = c.follows_up;
    var rows = [
      ['主诉 Complaint', c.complaint],
      ['病史 History', c.history || '—'],
      ['过敏史 Allergies', c.allergies || '—'],
      ['复诊依据 Follows up', d ? [d.icd10_code + ' ' + d.diagnosis, h('br'), h('small', {}, (d.icd10_title || '') + ' · ' +
        d.hospital_name + ' · ' + d.diagnosed_on), d.document ? [' · ', h('a', { href: '/api/v1/offline-diagnoses/' +
        d.id + '/document', target: '_blank', rel: 'noopener' }, '诊断证明 Document')] : null] : '—']
    ];
    CB.fill($('#c-form'), rows.map(function (r) { return [h('dt', {}, r[0]), h('dd', {}, r[1])]; }));
    chat.setEnabled();
    setRecordEnabled();
    setRxEditable();
  }

  function showActions(status) {
    var show = {
      accept: status === 'requested', reject: status === 'requested',
      start: status === 'accepted', close: status === 'accepted' || status === 'in_progress'
    };
    ['accept', 'reject', 'start', 'close'].forEach(function (k) { $('#' + k).hidden = !show[k]; });
    $('#reject-box').hidden = !show.reject;
    $('#close-box').hidden = !show.close;
  }

  function act(button, path, payload) {
    CB.hideMessage();
    var id = S.id;
    return CB.busy(button, CB.post(api(path), payload)).then(function (out) {
      if (id !== S.id) return;
      S.c = Object.assign(S.c || {}, out);
      renderConsultation();
      refreshInbox();
      if (out.status === 'in_progress' || out.status === 'closed') loadRecord();
    }).catch(function (err) {
      fail(err);
      reloadConsultation();
    });
  }

  $('#accept').addEventListener('click', function () {
    act(this, '/accept').then(function () { CB.show('success', '已接诊 Accepted'); });
  });
  $('#start').addEventListener('click', function () {
    act(this, '/start').then(function () { CB.show('success', '问诊已开始 The consultation has started'); });
  });
  $('#close').addEventListener('click', function () {
    var reason = val('#close-reason');
    if (!reason) { localError('请填写结束原因 Give a reason to close', 'reason_required'); $('#close-reason').focus(); return; }
    act(this, '/close', { reason: reason }).then(function () { CB.show('success', '问诊已结束 The consultation is closed'); });
  });
  $('#reject').addEventListener('click', function () {
    var reason = val('#reject-reason');
    if (!reason) { localError('请填写拒绝原因 Give a reason to decline', 'reason_required'); $('#reject-reason').focus(); return; }
    act(this, '/reject', { reason: reason }).then(function () { CB.show('success', '已拒绝 Declined'); });
  });

  function loadAttachments() {
    var id = S.id;
    CB.get(api('/attachments')).then(function (rows) {
      if (id !== S.id) return;
      var form = rows.filter(function (a) { return a.purpose === 'form'; });
      CB.fill($('#c-attachments'), form.length ? [h('h3', {}, '附件 ', h('small', {}, 'Attachments')),
        h('ul', { class: 'wb-attachments' }, form.map(function (a) {
          return h('li', {}, h('a', { href: a.url, target: '_blank', rel: 'noopener' }, a.filename),
            ' ', h('small', {}, Math.ceil(a.size / 1024) + ' KB'));
        }))] : []);
    }).catch(fail);
  }

  /* ---------------------------------------------------------------- chat (docs/chat.md) */

  var chat = (function () {
    var box = $('#messages');
    var input = $('#chat-input');
    var sendButton = $('#chat-send');
    var st = null;

    function fresh(id) {
      return { id: id, ws: null, gen: 0, lastSeq: 0, seen: {}, pending: {}, retries: 0, timer: null, ping: null,
        readSent: 0, typingSentAt: 0, typingTimer: null, patientRead: 0, open: false };
    }
    var generation = 0;

    function setState(state, text) {
      var el = $('#chat-state');
      el.dataset.state = state;
      el.textContent = text;
    }

    function shut(ws) {
      if (!ws) return;
      ws.onmessage = null;
      ws.onclose = null;
      ws.onerror = null;
      if (ws.readyState === WebSocket.CONNECTING) {
        ws.onopen = function () { ws.close(1000); }; // closing before it opens makes the browser complain
      } else if (ws.readyState === WebSocket.OPEN) {
        ws.close(1000);
      }
    }

    function stop() {
      generation++;
      if (!st) return;
      clearTimeout(st.timer);
      clearInterval(st.ping);
      clearTimeout(st.typingTimer);
      shut(st.ws);
      st.ws = null;
      st.open = false;
    }

    function open(id) {
      stop();
      st = fresh(id);
      st.gen = generation;
      CB.fill(box, []);
      $('#typing').hidden = true;
      connect();
      setEnabled();
    }

    function send(frame) {
      if (!st || !st.ws || !st.open) return false;
      st.ws.send(JSON.stringify(frame));
      return true;
    }

    function connect() {
      var mine = st;
      var gen = generation;
      var url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/api/v1/consultations/' +
        encodeURIComponent(mine.id) + '/chat?after=' + mine.lastSeq;
      var ws;
      setState('connecting', mine.retries ? '重新连接中… Reconnecting…' : '连接中… Connecting…');
      try {
        ws = new WebSocket(url);
      } catch (e) {
        retry(mine, gen);
        return;
      }
      mine.ws = ws;
      ws.onopen = function () {
        if (gen !== generation) return;
        mine.open = true;
        mine.ping = setInterval(function () { send({ type: 'ping' }); }, PING_MS);
      };
      ws.onmessage = function (event) {
        if (gen !== generation) return;
        var frame;
        try { frame = JSON.parse(event.data); } catch (e) { return; }
        onFrame(frame);
      };
      ws.onclose = function (event) {
        if (gen !== generation) return;
        mine.open = false;
        mine.ws = null;
        clearInterval(mine.ping);
        if (FINAL_CLOSE[event.code]) {
          if (event.code === 4403 && event.reason === 'handed_over') {
            setState('closed', '已转交其他医生 Handed over to a colleague');
            CB.show('info', '该问诊已转交其他医生 This consultation was handed over to a colleague');
            reloadConsultation();
            refreshInbox();
          } else {
            setState('closed', '无法连接 Cannot connect (' + (event.reason || event.code) + ')');
          }
          setEnabled();
          return;
        }
        retry(mine, gen);
      };
    }

    function retry(mine, gen) {
      if (gen !== generation) return;
      var delay = Math.min(30000, 1000 * Math.pow(2, mine.retries)) * (0.75 + Math.random() * 0.5);
      mine.retries++;
      setState('retrying', '连接断开，' + Math.round(delay / 1000) + ' 秒后重连 Disconnected, retrying…');
      mine.timer = setTimeout(function () { if (gen === generation) connect(); }, delay);
    }

    function onFrame(f) {
      switch (f.type) {
        case 'hello':
          st.retries = 0;
          setState('open', '已连接 Connected');
          st.patientRead = (f.read && f.read.patient) || 0;
          if (S.c && f.status && f.status !== S.c.status) reloadConsultation();
          Object.keys(st.pending).forEach(function (cid) { send(st.pending[cid].frame); }); // resends are safe
          showReads();
          break;
        case 'message': addMessage(f); break;
        case 'ack': onAck(f); break;
        case 'read':
          if (f.by === 'patient' && f.seq > st.patientRead) { st.patientRead = f.seq; showReads(); }
          break;
        case 'typing':
          if (f.by === 'patient') {
            $('#typing').hidden = false;
            clearTimeout(st.typingTimer);
            st.typingTimer = setTimeout(function () { $('#typing').hidden = true; }, TYPING_SHOW_MS);
          }
          break;
        case 'status':
          reloadConsultation();
          refreshInbox();
          break;
        case 'error': onError(f); break;
        default: break; // pong, ping, call and signal frames: nothing to show on a text workbench
      }
    }

    function messageEl(m) {
      var a = m.attachment;
      return h('div', { class: 'msg', dataset: { seq: m.seq, side: m.sender } },
        h('div', { class: 'msg-body' }, m.text || ''),
        a ? h('div', { class: 'msg-attachment' }, h('a', { href: a.url, target: '_blank', rel: 'noopener' },
          '📎 ' + a.filename)) : null,
        h('time', { datetime: m.sent_at }, CB.fmtDateTime(m.sent_at)));
    }

    function place(el, seq) {
      var children = box.children;
      for (var i = 0; i < children.length; i++) {
        var other = children[i];
        if (!other.dataset.seq || Number(other.dataset.seq) > seq) { box.insertBefore(el, other); return; }
      }
      box.appendChild(el);
    }

    function nearBottom() { return box.scrollHeight - box.scrollTop - box.clientHeight < 80; }
    function toBottom() { box.scrollTop = box.scrollHeight; }

    function addMessage(m) {
      if (typeof m.seq !== 'number' || st.seen[m.seq]) return; // never twice
      var stick = nearBottom();
      st.seen[m.seq] = true;
      if (m.seq > st.lastSeq) st.lastSeq = m.seq;
      var pending = m.client_id && st.pending[m.client_id];
      if (pending) { // our own message overtook its ack
        delete st.pending[m.client_id];
        pending.el.remove();
      }
      place(messageEl(m), m.seq);
      if (stick || m.sender === 'doctor') toBottom();
      if (m.sender === 'patient') { $('#typing').hidden = true; clearTimeout(st.typingTimer); }
      if (m.sender !== 'doctor') markRead();
      showReads();
    }

    function onAck(f) {
      var p = st.pending[f.client_id];
      if (!p) return;
      delete st.pending[f.client_id];
      if (st.seen[f.seq]) { p.el.remove(); return; }
      st.seen[f.seq] = true;
      if (f.seq > st.lastSeq) st.lastSeq = f.seq;
      p.el.classList.remove('pending');
      p.el.dataset.seq = f.seq;
      var time = p.el.querySelector('time');
      time.setAttribute('datetime', f.sent_at);
      time.textContent = CB.fmtDateTime(f.sent_at);
      p.el.remove();
      place(p.el, f.seq);
      toBottom();
      showReads();
    }

    function onError(f) {
      var p = f.ref && st.pending[f.ref];
      if (p) {
        delete st.pending[f.ref];
        p.el.classList.remove('pending');
        p.el.classList.add('failed');
        p.el.querySelector('time').textContent = '未发送 Not sent';
      }
      if (!p && f.code === 'too_many_frames') return; // a dropped typing or read frame does not matter
      fail(new CB.ApiError(0, f.code || 'chat_error', f.message || '', f.details));
    }

    function markRead() {
      if (document.hidden || !st || st.lastSeq <= st.readSent) return;
      if (send({ type: 'read', seq: st.lastSeq })) st.readSent = st.lastSeq;
    }

    function showReads() {
      Array.prototype.forEach.call(box.querySelectorAll('.msg[data-side="doctor"][data-seq]'), function (el) {
        el.classList.toggle('read', Number(el.dataset.seq) <= st.patientRead);
      });
    }

    function setEnabled() {
      var on = !!(S.c && S.c.status === 'in_progress' && st && st.id === S.c.id);
      input.disabled = !on;
      sendButton.disabled = !on;
      $('#chat-hint').textContent = on ? '' : S.c && S.c.status === 'accepted' ?
        '开始问诊后可发送消息 Start the consultation to send messages' :
        S.c && S.c.status === 'requested' ? '接诊并开始后可发送消息 Accept and start to send messages' :
          '问诊未在进行中，记录只读 Not in progress: the conversation is read-only';
    }

    $('#chat-form').addEventListener('submit', function (event) {
      event.preventDefault();
      var text = input.value.trim();
      if (!text || input.disabled || !st) return;
      var cid = 'd-' + CB.newKey();
      var frame = { type: 'message', client_id: cid, text: text, attachment_id: null };
      var el = h('div', { class: 'msg pending', dataset: { side: 'doctor', clientId: cid } },
        h('div', { class: 'msg-body' }, text), h('time', {}, '发送中… Sending…'));
      st.pending[cid] = { frame: frame, el: el };
      box.appendChild(el);
      toBottom();
      input.value = '';
      send(frame); // not open yet: it goes out after the next hello
      input.focus();
    });
    input.addEventListener('input', function () {
      if (!st || Date.now() - st.typingSentAt < TYPING_SEND_MS) return;
      if (send({ type: 'typing' })) st.typingSentAt = Date.now();
    });
    document.addEventListener('visibilitychange', function () { if (!document.hidden && st) markRead(); });

    return { open: open, stop: stop, setEnabled: setEnabled };
  })();

  /* ---------------------------------------------------------------- outpatient record */

  function latestRecord() { return S.records.length ? S.records[S.records.length - 1] : null; }
  function latestSigned() {
    var signed = S.records.filter(function (r) { return r.status === 'signed'; });
    return signed.length ? signed[signed.length - 1] : null;
  }

  function recordPayload() {
    var out = {};
    RECORD_FIELDS.forEach(function (f) { out[f] = orNull(val('#r-' + f)); });
    out.diagnoses = parseCodes($('#r-diagnoses').value);
    out.amend_reason = latestSigned() ? orNull(val('#r-amend_reason')) : null;
    return out;
  }
  function recordDirty() { return JSON.stringify(recordPayload()) !== S.recordSnapshot; }

  function fillRecordForm(r) {
    RECORD_FIELDS.forEach(function (f) { $('#r-' + f).value = (r && r[f]) || ''; });
    $('#r-diagnoses').value = r ? r.diagnoses.map(function (d) { return d.code; }).join(', ') : '';
    $('#r-amend_reason').value = r && r.status === 'draft' && r.amend_reason ? r.amend_reason : '';
    $('#r-amend-field').hidden = !latestSigned();
    renderDiagnosisTitles(r ? r.diagnoses : []);
    S.recordSnapshot = JSON.stringify(recordPayload());
  }

  function renderDiagnosisTitles(list) {
    $('#r-diagnoses-titles').textContent = list.map(function (d) { return d.code + ' ' + (d.title || ''); }).join('；');
  }

  function renderRecord() {
    var r = latestRecord();
    var box = $('#record-status');
    box.dataset.status = r ? r.status : 'none';
    box.dataset.version = r ? r.version : 0;
    CB.fill($('#record-state'), r ? [
      h('b', {}, '第 ' + r.version + ' 版 Version ' + r.version), ' · ',
      h('span', { class: 'badge ' + (r.status === 'signed' ? 'ok' : 'brand') }, RECORD_STATUS[r.status] || r.status), ' · ',
      h('span', { class: 'integrity', dataset: { integrity: r.integrity } }, '完整性 Integrity: ' +
        (INTEGRITY[r.integrity] || r.integrity)),
      r.signed_at ? ' · 签名于 Signed ' + CB.fmtDateTime(r.signed_at) : ''
    ] : '尚无病历 No record yet');
    var signed = latestSigned();
    var q = signed && signed.quality;
    var qc = $('#record-qc');
    qc.dataset.score = q ? q.score : '';
    CB.fill(qc, q ? [
      h('p', { class: 'wb-qc-head' }, '质控 Quality control（第 ' + signed.version + ' 版 v' + signed.version + '） 得分 Score ',
        h('b', { class: 'qc-score ' + (q.score >= 90 ? 'good' : q.score >= 70 ? 'fair' : 'poor') }, q.score),
        ' · ' + q.defect_count + ' 项缺陷 defects'),
      q.defects.length ? h('ul', { class: 'wb-defects' }, q.defects.map(function (d) {
        return h('li', { class: 'defect', dataset: { code: d.code } }, (d.rule ? '[' + d.rule + '] ' : '') + d.message,
          ' ', h('small', {}, d.code + ' −' + d.weight));
      })) : h('p', { class: 'muted' }, '无缺陷 No defects')
    ] : []);
    CB.fill($('#record-versions'), S.records.slice().reverse().map(function (v) {
      return h('li', { dataset: { version: v.version, status: v.status } }, 'v' + v.version + ' ',
        RECORD_STATUS[v.status] || v.status, v.signed_at ? ' · ' + CB.fmtDateTime(v.signed_at) : '',
        v.amend_reason ? ' · 修改原因 Amended: ' + v.amend_reason : '',
        v.quality ? ' · 质控 QC ' + v.quality.score : '');
    }));
  }

  function setRecordEnabled() {
    var c = S.c;
    var on = !!(c && (c.status === 'in_progress' || (c.status === 'closed' && c.started_at)));
    $('#record-fields').disabled = !on;
    ['#record-save', '#record-sign', '#record-password', '#record-from-form'].forEach(function (s) { $(s).disabled = !on; });
    $('#record-hint').textContent = on ? '' : '开始问诊后可书写病历 The record is written once the consultation has started';
  }

  function loadRecord() {
    var id = S.id;
    return CB.get(api('/record')).then(function (versions) {
      if (id !== S.id) return;
      S.records = versions;
      renderRecord();
      fillRecordForm(latestRecord());
      applyRecordDiagnoses();
    }).catch(function (err) {
      if (err.code !== 'record_not_writable') fail(err);
    });
  }

  function saveRecord() {
    var signed = latestSigned();
    if (signed && !val('#r-amend_reason')) {
      $('#r-amend-field').hidden = false;
      $('#r-amend_reason').focus();
      return Promise.reject(new CB.ApiError(0, 'record_signed', '', {}));
    }
    var id = S.id;
    return CB.put(api('/record'), recordPayload()).then(function (r) {
      if (id !== S.id) return r;
      return loadRecord().then(function () { return r; });
    });
  }

  $('#record-form').addEventListener('submit', function (event) {
    event.preventDefault();
    CB.hideMessage();
    CB.busy($('#record-save'), saveRecord()).then(function (r) {
      CB.show('success', '病历草稿已保存（第 ' + r.version + ' 版） Draft saved, version ' + r.version);
    }).catch(fail);
  });

  $('#record-sign').addEventListener('click', function () {
    CB.hideMessage();
    var password = $('#record-password').value;
    if (!password) { localError('请输入登录密码以签名 Type your password to sign', 'password_required'); $('#record-password').focus(); return; }
    var latest = latestRecord();
    var dirty = recordDirty();
    if (latest && latest.status === 'signed' && !dirty) {
      CB.show('info', '当前版本已签名；修改内容并填写修改原因后可签新版本 Already signed: change it and give a reason to sign a new version');
      return;
    }
    var id = S.id;
    var button = this;
    var work = (dirty || !latest ? saveRecord() : Promise.resolve()).then(function () {
      return CB.post(api('/record/sign'), { password: password }, { stay: true });
    }).then(function (r) {
      $('#record-password').value = '';
      if (id !== S.id) return;
      return loadRecord().then(function () {
        var q = r.quality;
        CB.show('success', '病历已签名（第 ' + r.version + ' 版） Record signed, version ' + r.version +
          (q ? ' · 质控 QC ' + q.score + ' 分' : ''));
      });
    });
    CB.busy(button, work).catch(fail);
  });

  $('#record-from-form').addEventListener('click', function () {
    var c = S.c;
    if (!c) return;
    var copy = { chief_complaint: c.complaint, past_history: c.history, allergies: c.allergies };
    Object.keys(copy).forEach(function (f) {
      if (copy[f] && !val('#r-' + f)) $('#r-' + f).value = copy[f];
    });
    if (!val('#r-diagnoses') && c.follows_up) $('#r-diagnoses').value = c.follows_up.icd10_code;
  });

  /* ---------------------------------------------------------------- prescription */

  var rxItems = $('#rx-items');

  function drugLabel(d) { return (SPECIAL[d.special_control] || '') + d.generic_name + ' ' + d.strength; }

  function fillDrugSelect(select, value, fallback) {
    var options = [h('option', { value: '' }, '— 选择药品 Choose a drug —')];
    S.drugs.forEach(function (d) {
      options.push(h('option', { value: d.id, dataset: { doseUnit: d.dose_unit, unit: d.unit,
        specialControl: d.special_control || '' } }, drugLabel(d)));
    });
    if (value && !S.drugById[value] && fallback) { // a drug since taken off the formulary, on an older prescription
      options.push(h('option', { value: value, dataset: { doseUnit: fallback.dose_unit, unit: fallback.unit } },
        fallback.drug_name + ' ' + fallback.strength + '（已停用 inactive）'));
    }
    CB.fill(select, options);
    select.value = value || '';
  }

  function optionsOf(list, value) {
    return list.map(function (x) { return h('option', { value: x[0], selected: x[0] === value }, x[0] + ' ' + x[1]); });
  }

  function updateUnits(tr) {
    var opt = tr.querySelector('.rx-drug').selectedOptions[0];
    tr.querySelector('.rx-dose-unit').textContent = (opt && opt.dataset.doseUnit) || '';
    tr.querySelector('.rx-qty-unit').textContent = (opt && opt.dataset.unit) || '';
    var special = opt && opt.dataset.specialControl;
    tr.classList.toggle('special', !!special);
  }

  function addRow(item) {
    item = item || {};
    var drug = h('select', { class: 'rx-drug', 'aria-label': '药品 Drug' });
    fillDrugSelect(drug, item.drug_id, item);
    var tr = h('tr', { class: 'rx-row' },
      h('td', { class: 'rx-drug-cell' }, h('span', { class: 'rx-line' }), drug),
      h('td', {}, h('span', { class: 'rx-with-unit' },
        h('input', { class: 'rx-dose', type: 'number', step: 'any', min: '0', inputmode: 'decimal', 'aria-label': '单次剂量 Dose',
          value: item.dose !== undefined ? item.dose : null }),
        h('span', { class: 'rx-dose-unit' }))),
      h('td', {}, h('select', { class: 'rx-frequency', 'aria-label': '频次 Frequency' }, optionsOf(FREQUENCIES, item.frequency || 'qd'))),
      h('td', {}, h('select', { class: 'rx-route', 'aria-label': '途径 Route' }, optionsOf(ROUTES, item.route || 'oral'))),
      h('td', {}, h('input', { class: 'rx-days', type: 'number', step: '1', min: '1', max: '365', 'aria-label': '天数 Days',
        value: item.days !== undefined ? item.days : 7 })),
      h('td', {}, h('span', { class: 'rx-with-unit' },
        h('input', { class: 'rx-quantity', type: 'number', step: '1', min: '1', max: '1000', 'aria-label': '数量 Quantity',
          value: item.quantity !== undefined ? item.quantity : 1 }),
        h('span', { class: 'rx-qty-unit' }))),
      h('td', {}, h('button', { type: 'button', class: 'btn small danger rx-remove', 'aria-label': '删除 Remove',
        title: '删除 Remove' }, '×')));
    rxItems.appendChild(tr);
    updateUnits(tr);
    numberRows();
    return tr;
  }

  function numberRows() {
    Array.prototype.forEach.call(rxItems.querySelectorAll('.rx-row'), function (tr, i) {
      tr.querySelector('.rx-line').textContent = i + 1;
    });
  }

  /* The form's prescription: rows without a drug are left out; a row with a drug must be complete. */
  function rxPayload() {
    var items = [];
    var rows = [];
    var partial = [];
    Array.prototype.forEach.call(rxItems.querySelectorAll('.rx-row'), function (tr, i) {
      var drug = tr.querySelector('.rx-drug').value;
      if (!drug) return;
      var dose = parseFloat(tr.querySelector('.rx-dose').value);
      var days = parseInt(tr.querySelector('.rx-days').value, 10);
      var quantity = parseInt(tr.querySelector('.rx-quantity').value, 10);
      if (!(dose > 0) || !(days >= 1) || !(quantity >= 1)) { partial.push(i + 1); return; }
      items.push({ drug_id: drug, dose: dose, frequency: tr.querySelector('.rx-frequency').value,
        route: tr.querySelector('.rx-route').value, days: days, quantity: quantity });
      rows.push(tr);
    });
    return { body: { diagnoses: parseCodes($('#rx-diagnoses').value), items: items }, rows: rows, partial: partial };
  }
  function rxDirty() { return JSON.stringify(rxPayload().body) !== S.rxSnapshot; }

  function renderTotal() {
    var total = 0;
    Array.prototype.forEach.call(rxItems.querySelectorAll('.rx-row'), function (tr) {
      var d = S.drugById[tr.querySelector('.rx-drug').value];
      var q = parseInt(tr.querySelector('.rx-quantity').value, 10);
      if (d && q > 0) total += d.price_fen * q;
    });
    $('#rx-total').textContent = total ? '合计 Total ' + CB.money(total) : '';
  }

  function renderFindings(findings) {
    S.findings = findings;
    var focused = document.activeElement;
    var focusKey = focused && focused.classList && focused.classList.contains('override') ? focused.dataset.key : null;
    var caret = focusKey ? focused.selectionStart : null;
    var list = findings.slice().sort(function (a, b) { return LEVEL_ORDER[a.level] - LEVEL_ORDER[b.level]; });
    var ul = $('#rx-findings');
    ul.classList.remove('stale');
    CB.fill(ul, list.length ? list.map(function (f) {
      return h('li', { class: 'finding', dataset: { level: f.level, code: f.code, key: f.key } },
        h('span', { class: 'finding-text' }, (f.rule ? '[' + f.rule + '] ' : '') + f.message),
        f.lines && f.lines.length ? h('small', { class: 'finding-lines' }, ' 第 ' + f.lines.join('、') + ' 行 line ' +
          f.lines.join(', ')) : null,
        f.level === 'warning' ? h('input', { class: 'override', dataset: { key: f.key }, maxlength: '200',
          placeholder: '超越理由 Override reason', 'aria-label': '超越理由 Override reason ' + f.key,
          disabled: !EDITABLE_RX[S.rx.status],
          value: S.overrides[f.key] || null }) : null);
    }) : h('li', { class: 'finding-none' }, '未发现问题 No findings'));
    if (focusKey) {
      var again = ul.querySelector('.override[data-key="' + CSS.escape(focusKey) + '"]');
      if (again) { again.focus(); try { again.setSelectionRange(caret, caret); } catch (e) { /* not a text input */ } }
    }
    var blocks = findings.filter(function (f) { return f.level === 'block'; }).length;
    var warnings = findings.filter(function (f) { return f.level === 'warning'; }).length;
    var can = $('#rx-can-sign');
    can.dataset.canSign = blocks ? 'false' : 'true';
    can.className = 'wb-can-sign ' + (blocks ? 'no' : 'yes');
    can.textContent = blocks ? '存在 ' + blocks + ' 项阻断，不能签名 Blocked: this prescription cannot be signed' :
      warnings ? '可签名，' + warnings + ' 条警告需填写超越理由 Can sign once each warning has an override reason' :
        '可签名 Can sign';
    highlightRows(findings);
  }

  function highlightRows(findings) {
    var rows = rxPayload().rows;
    Array.prototype.forEach.call(rxItems.querySelectorAll('.rx-row'), function (tr) {
      tr.classList.remove('has-block', 'has-warning');
    });
    findings.forEach(function (f) {
      (f.lines || []).forEach(function (line) {
        var tr = rows[line - 1];
        if (tr && f.level !== 'info') tr.classList.add(f.level === 'block' ? 'has-block' : 'has-warning');
      });
    });
  }

  function clearFindings(text) {
    S.findings = [];
    CB.fill($('#rx-findings'), []);
    var can = $('#rx-can-sign');
    can.dataset.canSign = '';
    can.className = 'wb-can-sign';
    can.textContent = text || '';
    highlightRows([]);
  }

  /* Findings an error carries (the blocks of a refused signature, the warnings still needing a reason) are
     merged into those shown, so the warnings answered already keep their reason boxes. */
  function mergeFindings(extra) {
    var byKey = {};
    var merged = S.findings.slice();
    merged.forEach(function (f, i) { byKey[f.key] = i; });
    extra.forEach(function (f) {
      if (byKey[f.key] !== undefined) merged[byKey[f.key]] = f; else merged.push(f);
    });
    renderFindings(merged);
    extra.forEach(function (f) {
      var li = $('#rx-findings .finding[data-key="' + CSS.escape(f.key) + '"]');
      if (li) li.classList.add('flagged');
    });
  }

  function scheduleCheck() {
    clearTimeout(S.checkTimer);
    S.checkTimer = setTimeout(runCheck, CHECK_DELAY_MS);
  }

  function runCheck() {
    if (!S.id || !EDITABLE_RX[S.rx.status] || !S.c || S.c.status !== 'in_progress') return;
    var p = rxPayload();
    var seq = ++S.checkSeq;
    if (!p.body.items.length) { clearFindings('添加药品后自动检查 Checks run once a drug is added'); return; }
    if (p.partial.length) {
      $('#rx-findings').classList.add('stale');
      $('#rx-can-sign').textContent = '第 ' + p.partial.join('、') + ' 行未填写完整 Complete row ' + p.partial.join(', ') +
        ' to check';
      $('#rx-can-sign').dataset.canSign = '';
      return;
    }
    var id = S.id;
    $('#rx-checking').hidden = false;
    CB.post(api('/prescriptions/check'), p.body).then(function (out) {
      if (seq !== S.checkSeq || id !== S.id) return;
      renderFindings(out.findings);
    }).catch(function (err) {
      if (seq !== S.checkSeq || id !== S.id) return;
      var fields = (err.details && err.details.errors) || [];
      var text = (ERROR_TEXT[err.code] || err.message) + (fields.length ? '：' + fields.map(function (f) {
        return f.field + ' ' + f.message;
      }).join('; ') : '');
      clearFindings('无法检查 Cannot check: ' + text + ' [' + err.code + ']');
      $('#rx-can-sign').dataset.canSign = 'false';
    }).finally(function () { if (seq === S.checkSeq) $('#rx-checking').hidden = true; });
  }

  function setRxStatus(rx) {
    var el = $('#rx-status');
    var status = rx ? rx.status : 'new';
    el.dataset.id = rx ? rx.id : '';
    el.dataset.status = status;
    CB.fill(el, rx ? [h('span', { class: 'badge ' + (RX_CLASS[status] || '') }, RX_STATUS[status] || status), ' ',
      h('small', {}, 'No. ' + short(rx.id) + ' · 第 ' + rx.revision + ' 版 rev. ' + rx.revision +
        (rx.total_fen ? ' · ' + CB.money(rx.total_fen) : ''))] :
      [h('span', { class: 'badge' }, RX_STATUS.new)]);
  }

  function setRxEditable() {
    var inProgress = !!(S.c && S.c.status === 'in_progress');
    var editable = inProgress && !!EDITABLE_RX[S.rx.status];
    $('#rx-fields').disabled = !editable;
    $('#rx-save').disabled = !editable;
    $('#rx-sign').disabled = !editable;
    $('#rx-password').disabled = !editable;
    $('#rx-new').disabled = !inProgress;
    $('#rx-hint').textContent = !inProgress ? '问诊进行中才能开处方 Prescriptions are written while the consultation is in progress' :
      editable ? '' : '该处方已签名，如需另开请点「新处方」 Signed: use "New prescription" for another one';
  }

  function newRx(blank) {
    clearTimeout(S.checkTimer);
    S.checkSeq++;
    S.rx = { id: null, status: 'new', revision: null };
    S.overrides = {};
    S.rxDiagTouched = false;
    $('#rx-diagnoses').value = '';
    $('#rx-password').value = '';
    CB.fill(rxItems, []);
    addRow();
    setRxStatus(null);
    clearFindings(blank ? '' : '添加药品后自动检查 Checks run once a drug is added');
    if (!blank) applyRecordDiagnoses();
    S.rxSnapshot = JSON.stringify(rxPayload().body);
    renderTotal();
    setRxEditable();
    markCurrentRx();
  }

  /* A new prescription takes the record's diagnoses, until the doctor types their own. */
  function applyRecordDiagnoses() {
    if (S.rx.status !== 'new' || S.rxDiagTouched) return;
    var r = latestRecord();
    var codes = r ? r.diagnoses.map(function (d) { return d.code; }).join(', ') : '';
    var input = $('#rx-diagnoses');
    if (input.value !== codes) {
      input.value = codes;
      S.rxSnapshot = JSON.stringify(rxPayload().body);
      if (rxPayload().body.items.length) scheduleCheck();
    }
  }

  function loadRxIntoForm(rx) {
    clearTimeout(S.checkTimer);
    S.checkSeq++;
    S.rx = { id: rx.id, status: rx.status, revision: rx.revision };
    S.overrides = {};
    (rx.overrides || []).forEach(function (o) { S.overrides[o.key] = o.reason; });
    S.rxDiagTouched = true;
    $('#rx-diagnoses').value = rx.diagnoses.map(function (d) { return d.code; }).join(', ');
    CB.fill(rxItems, []);
    rx.items.forEach(function (item) { addRow(item); });
    if (!rx.items.length) addRow();
    setRxStatus(rx);
    renderFindings(rx.findings || []);
    S.rxSnapshot = JSON.stringify(rxPayload().body);
    renderTotal();
    setRxEditable();
    markCurrentRx();
  }

  /* After a save or a signature: the answer is what the server holds; keep the doctor's rows as they are. */
  function applySaved(rx) {
    S.rx = { id: rx.id, status: rx.status, revision: rx.revision };
    setRxStatus(rx);
    renderFindings(rx.findings || []);
    S.rxSnapshot = JSON.stringify(rxPayload().body);
    setRxEditable();
    loadRxList();
  }

  function saveRx() {
    var p = rxPayload();
    if (p.partial.length) {
      return Promise.reject(new CB.ApiError(0, 'incomplete_row', '第 ' + p.partial.join('、') + ' 行未填写完整 Complete row ' +
        p.partial.join(', '), {}));
    }
    if (!p.body.items.length) return Promise.reject(new CB.ApiError(0, 'no_items', '请至少添加一种药品 Add at least one drug', {}));
    if (!EDITABLE_RX[S.rx.status]) {
      return Promise.reject(new CB.ApiError(0, 'prescription_not_draft', '', {}));
    }
    var id = S.id;
    var request = S.rx.id ? CB.put('/api/v1/prescriptions/' + encodeURIComponent(S.rx.id), p.body) :
      CB.post(api('/prescriptions'), p.body);
    clearTimeout(S.checkTimer);
    S.checkSeq++; // a check still running answers for rows the save supersedes
    return request.then(function (rx) {
      if (id === S.id) applySaved(rx);
      return rx;
    });
  }

  function collectOverrides() {
    var out = {};
    Array.prototype.forEach.call(document.querySelectorAll('#rx-findings .override'), function (input) {
      var reason = input.value.trim();
      if (reason) out[input.dataset.key] = reason;
    });
    return out;
  }

  function rxFail(err) {
    if (err instanceof CB.ApiError && err.details && Array.isArray(err.details.findings) && err.details.findings.length) {
      mergeFindings(err.details.findings);
    }
    fail(err);
  }

  $('#rx-save').addEventListener('click', function () {
    CB.hideMessage();
    CB.busy(this, saveRx()).then(function (rx) {
      CB.show('success', '处方已保存（' + (RX_STATUS[rx.status] || rx.status) + '） Prescription saved');
    }).catch(rxFail).finally(setRxEditable); // busy() re-enables the button: the status decides
  });

  $('#rx-sign').addEventListener('click', function () {
    CB.hideMessage();
    var password = $('#rx-password').value;
    if (!password) { localError('请输入登录密码以签名 Type your password to sign', 'password_required'); $('#rx-password').focus(); return; }
    var id = S.id;
    var needSave = !S.rx.id || S.rx.status !== 'draft' || rxDirty();
    var work = (needSave ? saveRx() : Promise.resolve()).then(function () {
      return CB.post('/api/v1/prescriptions/' + encodeURIComponent(S.rx.id) + '/sign',
        { password: password, overrides: collectOverrides() }, { stay: true });
    }).then(function (rx) {
      $('#rx-password').value = '';
      if (id !== S.id) return;
      applySaved(rx);
      CB.show('success', '处方已签名，等待药师审核 Signed: waiting for the pharmacist\'s review');
    });
    CB.busy(this, work).catch(function (err) {
      if (id === S.id) rxFail(err); else fail(err);
    }).finally(setRxEditable);
  });

  $('#rx-new').addEventListener('click', function () { CB.hideMessage(); newRx(false); });
  $('#rx-add-row').addEventListener('click', function () {
    var tr = addRow();
    tr.querySelector('.rx-drug').focus();
  });

  rxItems.addEventListener('click', function (event) {
    var button = event.target.closest('.rx-remove');
    if (!button) return;
    button.closest('tr').remove();
    if (!rxItems.querySelector('.rx-row')) addRow();
    numberRows();
    renderTotal();
    scheduleCheck();
  });

  function onRxEdit(event) {
    var t = event.target;
    if (t.classList.contains('override')) { S.overrides[t.dataset.key] = t.value; return; }
    if (t.id === 'rx-password') return;
    if (t.id === 'rx-diagnoses') S.rxDiagTouched = true;
    if (t.classList.contains('rx-drug')) updateUnits(t.closest('tr'));
    if (t.closest('#rx-fields')) { renderTotal(); scheduleCheck(); }
  }
  $('#rx-form').addEventListener('input', onRxEdit);
  $('#rx-form').addEventListener('change', onRxEdit);
  $('#rx-form').addEventListener('submit', function (event) { event.preventDefault(); });

  function rxCard(rx) {
    var editable = rx.status === 'draft' || rx.status === 'rejected';
    return h('div', { class: 'rx' + (rx.id === S.rx.id ? ' current' : ''), dataset: { id: rx.id, status: rx.status } },
      h('div', { class: 'rx-head' },
        h('b', {}, '处方 No. ' + short(rx.id)), ' ',
        h('span', { class: 'badge rx-state ' + (RX_CLASS[rx.status] || '') }, RX_STATUS[rx.status] || rx.status), ' ',
        h('small', { class: 'rx-revision' }, '第 ' + rx.revision + ' 版 Revision ' + rx.revision), ' ',
        h('span', { class: 'price rx-total' }, CB.money(rx.total_fen)),
        rx.signed_at ? h('small', {}, ' · 签名 Signed ' + CB.fmtDateTime(rx.signed_at)) : null),
      h('div', { class: 'rx-diag muted' }, rx.diagnoses.map(function (d) { return d.code + ' ' + (d.title || ''); }).join('；')),
      h('ol', { class: 'rx-lines' }, rx.items.map(function (i) {
        return h('li', {}, i.drug_name + ' ' + i.strength + ' · ' + i.dose + i.dose_unit + ' ' + i.frequency + ' ' +
          i.route + ' × ' + i.days + '天 days · ' + i.quantity + i.unit);
      })),
      rx.status === 'rejected' && rx.review_reason ? h('p', { class: 'rx-review-reason' }, '驳回原因 Rejected: ' +
        rx.review_reason) : null,
      h('div', { class: 'row' },
        editable ? h('button', { type: 'button', class: 'btn small secondary rx-revise', onclick: function () {
          CB.hideMessage();
          loadRxIntoForm(rx);
          $('#rx-form').scrollIntoView({ block: 'start' });
        } }, rx.status === 'rejected' ? '修改后重新提交 Revise' : '继续编辑 Revise') :
          h('button', { type: 'button', class: 'btn small secondary rx-view', onclick: function () {
            loadRxIntoForm(rx);
          } }, '查看 View')));
  }

  function loadRxList() {
    var id = S.id;
    return CB.get(api('/prescriptions')).then(function (rows) {
      if (id !== S.id) return;
      CB.fill($('#rx-list'), rows.length ? rows.map(rxCard) : h('p', { class: 'muted' }, '暂无处方 No prescriptions yet'));
    }).catch(fail);
  }

  function markCurrentRx() {
    Array.prototype.forEach.call(document.querySelectorAll('#rx-list .rx'), function (el) {
      el.classList.toggle('current', !!S.rx.id && el.dataset.id === S.rx.id);
    });
  }

  function loadFormulary() {
    var hospital = CB.data.hospitalId;
    if (!hospital) return Promise.resolve();
    var all = [];
    function page(offset) {
      return CB.get('/api/v1/hospitals/' + encodeURIComponent(hospital) + '/formulary?limit=200&offset=' + offset)
        .then(function (out) {
          all = all.concat(out.items);
          if (out.items.length && all.length < out.total) return page(all.length);
        });
    }
    return page(0).then(function () {
      S.drugs = all.filter(function (d) { return d.active; });
      S.drugById = {};
      S.drugs.forEach(function (d) { S.drugById[d.id] = d; });
      Array.prototype.forEach.call(rxItems.querySelectorAll('.rx-row'), function (tr) {
        var select = tr.querySelector('.rx-drug');
        var current = select.value;
        var opt = select.selectedOptions[0];
        fillDrugSelect(select, current, opt && current ? { drug_name: opt.textContent, strength: '',
          dose_unit: opt.dataset.doseUnit, unit: opt.dataset.unit } : null);
        updateUnits(tr);
      });
      renderTotal();
    }).catch(fail);
  }

  /* ---------------------------------------------------------------- follow-up */

  function loadFollowups() {
    var id = S.id;
    return CB.get(api('/follow-ups')).then(function (rows) {
      if (id !== S.id) return;
      CB.fill($('#followup-list'), rows.map(function (f) {
        return h('li', { class: 'followup', dataset: { id: f.id, status: f.status } },
          '复诊 Follow-up ' + CB.fmtDateTime(f.due_at), f.note ? ' · ' + f.note : '',
          ' · ', f.status === 'scheduled' ? '已设置 Scheduled' : f.status === 'notified' ? '已提醒 Notified' : f.status);
      }));
    }).catch(function (err) { if (err.code !== 'consultation_not_started') fail(err); });
  }

  $('#followup-form').addEventListener('submit', function (event) {
    event.preventDefault();
    CB.hideMessage();
    var due = $('#followup-date').value;
    if (!due) { localError('请选择复诊日期 Pick a date', 'date_required'); return; }
    var id = S.id;
    CB.busy($('#followup-save'), CB.post(api('/follow-ups'), { due_on: due, note: orNull(val('#followup-note')) }))
      .then(function () {
        CB.show('success', '已设置复诊提醒 ' + CB.fmtDay(due) + ' Follow-up reminder set');
        $('#followup-form').reset();
        if (id === S.id) loadFollowups();
      }).catch(fail);
  });

  /* ---------------------------------------------------------------- start */

  if (CB.today) $('#followup-date').min = CB.addDays(CB.today, 1);
  inboxFilter.addEventListener('change', refreshInbox);
  document.addEventListener('visibilitychange', function () { if (!document.hidden) refreshInbox(); });
  setInterval(function () { if (!document.hidden) refreshInbox(); }, INBOX_MS);
  window.addEventListener('pagehide', function () { chat.stop(); });

  newRx(true);
  var formulary = loadFormulary();
  refreshInbox();
  var wanted = new URLSearchParams(location.search).get('c');
  if (wanted) formulary.then(function () { select(wanted); });
})();
