/* Patient consultation page: status, the chat over the consultation's WebSocket (docs/chat.md), prescriptions
   with delivery, and the signed medical record. */
(function () {
  'use strict';
  var CB = window.CB;
  var h = CB.h;

  var STATUS = {
    requested: ['待接诊 Waiting', 'brand'], accepted: ['已接诊 Accepted', 'ok'], in_progress: ['问诊中 In progress', 'ok'],
    closed: ['已结束 Closed', ''], rejected: ['医生未接诊 Declined', 'danger'], expired: ['已过期 Expired', 'warn'],
    cancelled: ['已取消 Cancelled', 'danger']
  };
  var STATUS_HINT = {
    requested: '等待医生接诊，接诊后即可开始对话 Waiting for the doctor to accept',
    accepted: '医生已接诊，即将开始问诊 The doctor accepted and will start soon',
    in_progress: '问诊进行中，可以和医生对话 You can talk with the doctor now',
    closed: '问诊已结束，对话记录仍可查看 The consultation has ended; the conversation stays readable',
    rejected: '医生未接诊本次问诊 The doctor declined this consultation',
    expired: '医生未在规定时间内接诊，请求已过期 Nobody accepted in time: the request expired',
    cancelled: '您已取消本次问诊 You cancelled this consultation'
  };
  var KIND = { text: '图文问诊 Text', video: '视频问诊 Video' };
  var RX_STATUS = {
    pending_review: ['待药师审核 Pending review', 'brand'], approved: ['已通过 Approved', 'ok'],
    rejected: ['已退回 Returned', 'warn'], dispensed: ['已发药 Dispensed', 'ok'], expired: ['已过期 Expired', ''],
    cancelled: ['已作废 Cancelled', 'danger']
  };
  var DELIVERY_STATUS = {
    created: ['已下单，待配药 Ordered', 'brand'], dispensed: ['已配药，待发货 Dispensed', 'brand'],
    shipped: ['配送中 On its way', 'ok'], delivered: ['已签收 Delivered', ''], returned: ['已退回 Returned', 'danger']
  };
  var FREQUENCY = {
    qd: '每日1次 once a day', bid: '每日2次 twice a day', tid: '每日3次 3 times a day', qid: '每日4次 4 times a day',
    q6h: '每6小时 every 6 h', q8h: '每8小时 every 8 h', q12h: '每12小时 every 12 h', qn: '每晚 at night',
    qod: '隔日 every other day', qw: '每周1次 weekly'
  };
  var ROUTE = {
    oral: '口服', sublingual: '舌下', inhaled: '吸入', topical: '外用', ophthalmic: '滴眼', nasal: '鼻用',
    rectal: '直肠', sc: '皮下注射', im: '肌注', iv: '静注'
  };
  var ERRORS = {
    consultation_not_open: '问诊未在进行中，不能发送消息 Messages can be sent only while the consultation is in progress',
    prescription_not_approved: '处方尚未通过审核 The prescription is not approved',
    prescription_expired: '处方已过有效期 The prescription has expired',
    delivery_exists: '该处方已有配送单 This prescription already has a delivery order',
    pharmacy_name_required: '请填写合作药房名称 Name the partner pharmacy',
    too_many_frames: '发送太快，请稍候 Sending too fast: wait a moment',
    message_too_long: '消息太长 The message is too long',
    empty_message: '消息不能为空 The message is empty',
    file_type_mismatch: '文件类型与内容不符 The file type does not match its content',
    not_cancellable: '该问诊不能取消 This consultation cannot be cancelled'
  };
  var NO_RETRY = { 4400: 1, 4401: 1, 4403: 1, 4404: 1 };
  var RX_REFRESH_MS = 5000;
  var PING_MS = 25000;

  function showError(err) {
    if (err && ERRORS[err.code]) CB.show('error', ERRORS[err.code], err.code);
    else CB.showError(err);
  }
  function badge(table, value, extra) {
    var s = table[value] || [value, ''];
    return h('span', { class: 'badge ' + s[1] + (extra ? ' ' + extra : ''), dataset: { status: value } }, s[0]);
  }
  function fmtSize(n) { return n >= 1048576 ? (n / 1048576).toFixed(1) + ' MB' : Math.max(1, Math.round(n / 1024)) + ' KB'; }
  function num(x) { return String(Math.round(x * 1000) / 1000); }

  function consultationPage() {
    var cid = CB.data.consultationId;
    var base = '/api/v1/consultations/' + cid;
    var consultation = null;
    var status = null;
    var you = 'patient';

    // --- header and status ---------------------------------------------------------------------------
    var statusEl = CB.$('#status');
    function setStatus(value) {
      var changed = value !== status;
      status = value;
      var s = STATUS[value] || [value, ''];
      statusEl.dataset.status = value;
      statusEl.className = 'badge ' + s[1];
      statusEl.textContent = s[0];
      CB.$('#status-hint').textContent = STATUS_HINT[value] || '';
      var cancellable = value === 'requested' || value === 'accepted';
      CB.$('#cancel-row').hidden = !cancellable;
      if (!cancellable) CB.$('#cancel-confirm').hidden = true;
      setComposer();
      return changed;
    }
    function renderHeader(c) {
      consultation = c;
      CB.$('#doctor-name').textContent = (c.practitioner_name || '医生 Doctor') +
        (c.department_name ? ' · ' + c.department_name : '');
      CB.fill(CB.$('#consult-meta'), [
        h('div', {}, [c.hospital_name, KIND[c.kind] || c.kind, c.patient ? '就诊人 ' + c.patient.name : null]
          .filter(Boolean).join(' · ')),
        h('div', {}, '发起于 Requested ' + CB.fmtDateTime(c.requested_at) +
          (c.end_reason && c.status !== 'in_progress' ? ' · 原因 Reason: ' + c.end_reason : '')),
        c.follows_up ? h('div', {}, '复诊 Follows up: ' + [c.follows_up.icd10_code, c.follows_up.diagnosis,
          c.follows_up.hospital_name].join(' · ')) : null
      ]);
      setStatus(c.status);
    }
    function loadConsultation() {
      return CB.get(base).then(renderHeader);
    }
    CB.$('#cancel').addEventListener('click', function () { CB.$('#cancel-confirm').hidden = false; });
    CB.$('#cancel-no').addEventListener('click', function () { CB.$('#cancel-confirm').hidden = true; });
    CB.$('#cancel-yes').addEventListener('click', function () {
      CB.hideMessage();
      CB.busy(CB.$('#cancel-yes'), CB.post(base + '/cancel', { reason: 'patient_request' })).then(function (c) {
        CB.$('#cancel-confirm').hidden = true;
        setStatus(c.status);
        CB.show('success', '已取消问诊 Consultation cancelled');
        return loadConsultation();
      }).catch(showError);
    });

    // --- chat ----------------------------------------------------------------------------------------
    var box = CB.$('#messages');
    var input = CB.$('#chat-input');
    var sendButton = CB.$('#chat-send');
    var attachButton = CB.$('#chat-attach');
    var fileInput = CB.$('#chat-file');
    var connState = CB.$('#conn-state');
    var bySeq = {};       // seq -> element
    var pending = {};     // client_id -> {frame, el}
    var lastSeq = 0;      // we hold every message up to this number: the resume point
    var maxSeq = 0;       // highest number known (messages and acks)
    var readSent = 0;
    var otherRead = 0;
    var ws = null;
    var connected = false;
    var retries = 0;
    var retryTimer = null;
    var pingTimer = null;
    var typingTimer = null;
    var lastTypingSent = 0;
    var stopped = false;  // no more reconnecting
    var leaving = false;  // the page is going away

    function setComposer() {
      var open = status === 'in_progress';
      input.disabled = !open;
      sendButton.disabled = !open;
      attachButton.disabled = !open;
      input.placeholder = open ? '输入消息 Message' : status === 'requested' || status === 'accepted' ?
        '待医生开始问诊 Not started yet' : '问诊已结束 Chat closed';
    }
    function setConn(state, text) {
      connState.dataset.state = state;
      connState.textContent = text;
    }
    function nearBottom() { return box.scrollHeight - box.scrollTop - box.clientHeight < 80; }
    function toBottom() { box.scrollTop = box.scrollHeight; }

    function attachmentView(a) {
      if (!a) return null;
      if (a.content_type && a.content_type.indexOf('image/') === 0) {
        return h('a', { class: 'msg-file', href: a.url, target: '_blank', rel: 'noopener' },
          h('img', { class: 'msg-img', src: a.url, alt: a.filename, loading: 'lazy' }));
      }
      return h('a', { class: 'msg-file', href: a.url, target: '_blank', rel: 'noopener' },
        '📄 ' + a.filename + ' (' + fmtSize(a.size) + ')');
    }
    function messageEl(m, side) {
      var mine = side === you;
      return h('div', { class: 'msg' + (mine ? ' mine' : ''), dataset: { side: side } },
        h('div', { class: 'msg-body' }, m.text || null, attachmentView(m.attachment)),
        h('time', m.sent_at ? { datetime: m.sent_at } : {}, m.sent_at ? CB.fmtDateTime(m.sent_at) : '发送中… Sending…'));
    }
    function markReadState() {
      Object.keys(bySeq).forEach(function (seq) {
        var el = bySeq[seq];
        if (el.dataset.side === you && +seq <= otherRead) el.dataset.read = 'true';
      });
    }
    /* Put a numbered message in order: after the last numbered one below it, before any still being sent. */
    function place(el, seq) {
      var node = box.lastElementChild;
      while (node && (!node.dataset.seq || +node.dataset.seq > seq)) node = node.previousElementSibling;
      box.insertBefore(el, node ? node.nextElementSibling : box.firstElementChild);
    }
    function numbered(el, seq) {
      el.dataset.seq = String(seq);
      bySeq[seq] = el;
      if (seq > maxSeq) maxSeq = seq;
      while (bySeq[lastSeq + 1]) lastSeq += 1;
      if (el.dataset.side === you && seq <= otherRead) el.dataset.read = 'true';
    }
    function onMessage(m) {
      if (bySeq[m.seq]) return; // already shown (a resend, or our own message after its ack)
      var stick = nearBottom();
      var mine = m.sender === you && m.client_id && pending[m.client_id];
      if (mine) { mine.el.remove(); delete pending[m.client_id]; }
      var el = messageEl(m, m.sender);
      numbered(el, m.seq);
      place(el, m.seq);
      if (stick || m.sender === you) toBottom();
      if (m.sender !== you) {
        CB.$('#typing').hidden = true;
        sendRead();
      }
    }
    function onAck(frame) {
      var p = pending[frame.client_id];
      if (!p) return;
      delete pending[frame.client_id];
      if (bySeq[frame.seq]) { p.el.remove(); return; }
      p.el.classList.remove('pending');
      var time = p.el.querySelector('time');
      time.setAttribute('datetime', frame.sent_at);
      time.textContent = CB.fmtDateTime(frame.sent_at);
      p.el.remove();
      numbered(p.el, frame.seq);
      place(p.el, frame.seq);
      toBottom();
    }
    function onError(frame) {
      var p = frame.ref && pending[frame.ref];
      if (p && frame.code !== 'not_stored') {  // not_stored: the resend on reconnect will store it
        delete pending[frame.ref];
        p.el.remove();
        if (!input.value && p.frame.text) input.value = p.frame.text;
      }
      showError(new CB.ApiError(0, frame.code, frame.message, frame.details));
    }
    function send(frame) {
      if (ws && connected && ws.readyState === WebSocket.OPEN) {
        ws.send(JSON.stringify(frame));
        return true;
      }
      return false;
    }
    function sendRead() {
      if (document.visibilityState !== 'visible' || maxSeq <= readSent) return;
      if (send({ type: 'read', seq: maxSeq })) readSent = maxSeq;
    }
    function sendMessage(text, attachment) {
      var frame = { type: 'message', client_id: 'p-' + CB.newKey().slice(0, 20), text: text || null };
      if (attachment) frame.attachment_id = attachment.id;
      var el = messageEl({ text: text, attachment: attachment }, you);
      el.classList.add('pending');
      el.dataset.clientId = frame.client_id;
      box.appendChild(el);
      toBottom();
      pending[frame.client_id] = { frame: frame, el: el };
      send(frame); // not connected: it goes out again (same client_id) once the socket is back
    }

    CB.$('#chat-form').addEventListener('submit', function (event) {
      event.preventDefault();
      var text = input.value.trim();
      if (!text || status !== 'in_progress') return;
      sendMessage(text, null);
      input.value = '';
      input.focus();
    });
    input.addEventListener('input', function () {
      var now = Date.now();
      if (status === 'in_progress' && input.value && now - lastTypingSent > 3000 && send({ type: 'typing' })) {
        lastTypingSent = now;
      }
    });
    attachButton.addEventListener('click', function () { fileInput.click(); });
    fileInput.addEventListener('change', function () {
      var file = fileInput.files[0];
      if (!file) return;
      var data = new FormData();
      data.append('file', file);
      data.append('purpose', 'chat');
      var upload = fetch(base + '/attachments', {
        method: 'POST', credentials: 'same-origin', body: data,
        headers: { Accept: 'application/json', 'X-CSRF-Token': CB.cookie('cb_csrf') }
      }).catch(function () {
        throw new CB.ApiError(0, 'network_error', 'network error', {});
      }).then(function (response) {
        return response.json().catch(function () { return null; }).then(function (body) {
          if (response.ok) return body;
          var e = (body && body.error) || {};
          throw new CB.ApiError(response.status, e.code || 'http_' + response.status, e.message || 'upload failed',
            e.details);
        });
      });
      CB.busy(attachButton, upload).then(function (a) {
        sendMessage(null, a);
      }).catch(showError).finally(function () { fileInput.value = ''; setComposer(); });
    });

    function showTyping() {
      var el = CB.$('#typing');
      el.hidden = false;
      clearTimeout(typingTimer);
      typingTimer = setTimeout(function () { el.hidden = true; }, 4000);
    }

    function onFrame(frame) {
      switch (frame.type) {
        case 'hello':
          connected = true;
          retries = 0;
          you = frame.you || 'patient';
          otherRead = Math.max(otherRead, (frame.read || {})[you === 'patient' ? 'doctor' : 'patient'] || 0);
          readSent = Math.max(readSent, (frame.read || {})[you] || 0);
          markReadState();
          setConn('open', '已连接 Connected');
          if (setStatus(frame.status)) { loadConsultation().catch(showError); refreshRx(); }
          Object.keys(pending).forEach(function (id) { send(pending[id].frame); }); // resends are safe
          break;
        case 'message':
          onMessage(frame);
          break;
        case 'ack':
          onAck(frame);
          break;
        case 'read':
          if (frame.by !== you && frame.seq > otherRead) { otherRead = frame.seq; markReadState(); }
          if (frame.by === you && frame.seq > readSent) readSent = frame.seq; // read on another device
          break;
        case 'typing':
          if (frame.by !== you) showTyping();
          break;
        case 'status':
          setStatus(frame.status);
          loadConsultation().catch(showError);
          refreshRx();
          loadRecord();
          break;
        case 'call':
          CB.show('info', frame.state === 'started' ? '视频通话已开始 Video call started' :
            '视频通话已结束 Video call ended');
          break;
        case 'error':
          onError(frame);
          break;
        default: // pong, ping, signal: nothing to show
      }
    }

    function connect() {
      clearTimeout(retryTimer);
      retryTimer = null;
      if (stopped || (ws && ws.readyState <= WebSocket.OPEN)) return;
      var url = (location.protocol === 'https:' ? 'wss' : 'ws') + '://' + location.host + base + '/chat?after=' + lastSeq;
      setConn('connecting', retries ? '重新连接中… Reconnecting…' : '连接中… Connecting…');
      var socket = new WebSocket(url);
      ws = socket;
      socket.onmessage = function (event) {
        var frame;
        try { frame = JSON.parse(event.data); } catch (e) { return; }
        if (socket === ws) onFrame(frame);
      };
      socket.onclose = function (event) {
        if (socket !== ws) return;
        connected = false;
        ws = null;
        clearInterval(pingTimer);
        if (stopped) return;
        if (NO_RETRY[event.code]) {
          stopped = true;
          setConn('closed', '连接已关闭 Disconnected');
          // ask once over HTTP to learn why (a 401 goes to the login page)
          CB.get(base).then(renderHeader).catch(showError);
          return;
        }
        var delay = Math.min(30000, 1000 * Math.pow(2, retries)) + Math.floor(Math.random() * 500);
        retries += 1;
        setConn('retrying', '连接断开，' + Math.round(delay / 1000) + ' 秒后重连 Reconnecting in ' +
          Math.round(delay / 1000) + ' s');
        retryTimer = setTimeout(connect, delay);
      };
      socket.onopen = function () {
        clearInterval(pingTimer);
        pingTimer = setInterval(function () { send({ type: 'ping' }); }, PING_MS);
      };
    }
    window.addEventListener('online', function () { if (!ws && !stopped) { retries = 0; connect(); } });
    window.addEventListener('pagehide', function () {
      stopped = leaving = true;
      clearTimeout(retryTimer);
      if (ws) ws.close(1000);
    });
    window.addEventListener('pageshow', function (event) {
      if (!event.persisted) return; // back from the browser's page cache: pick up where we left
      stopped = leaving = false;
      retries = 0;
      connect();
      refreshRx();
    });

    // --- prescriptions and delivery --------------------------------------------------------------------
    var rxBox = CB.$('#prescriptions');
    var rxShown = {};      // prescription id -> {key, el}
    var deliveries = {};   // delivery order id -> order (terminal ones are not asked again)
    var rxBusy = false;

    function itemView(i) {
      return h('li', { class: 'rx-item', dataset: { line: i.line } },
        h('div', { class: 'row spread' }, h('span', { class: 'title' }, i.drug_name + ' ' + i.strength),
          h('span', { class: 'amount' }, CB.money(i.amount_fen))),
        h('div', { class: 'meta' }, ['每次 ' + num(i.dose) + ' ' + i.dose_unit, FREQUENCY[i.frequency] || i.frequency,
          ROUTE[i.route] || i.route, i.days + ' 天 days', '共 ' + i.quantity + ' ' + i.unit].join(' · ')));
    }
    function deliveryView(rx, order) {
      if (!order) return h('div', { class: 'delivery', dataset: { status: 'loading' } }, '配送信息加载中… Loading delivery…');
      var shipped = order.status === 'shipped';
      var confirm = shipped ? h('button', { type: 'button', class: 'btn small confirm-receipt',
        onclick: function () {
          CB.hideMessage();
          CB.busy(confirm, CB.post('/api/v1/delivery-orders/' + order.id + '/deliver', {})).then(function (o) {
            deliveries[o.id] = o;
            CB.show('success', '已确认收货 Receipt confirmed');
            refreshRx();
          }).catch(showError);
        } }, '确认收货 Confirm receipt') : null;
      return h('div', { class: 'delivery', dataset: { status: order.status, id: order.id } },
        h('div', { class: 'row spread' }, h('strong', {}, '配送 Delivery'), badge(DELIVERY_STATUS, order.status)),
        h('div', { class: 'meta' }, [order.pharmacy_name, order.recipient_name, order.recipient_phone].join(' · ')),
        h('div', { class: 'meta' }, order.address),
        order.carrier ? h('div', { class: 'tracking' }, '快递 Carrier: ' + order.carrier +
          (order.tracking_number ? ' · 单号 Tracking no. ' + order.tracking_number : '')) : null,
        order.handover_code && order.status !== 'delivered' && order.status !== 'returned' ?
          h('div', { class: 'handover' }, '取件码（签收时出示给配送员）Hand-over code: show it to the courier ',
            h('strong', { class: 'handover-code' }, order.handover_code)) : null,
        order.delivered_at ? h('div', { class: 'meta' }, '签收于 Delivered ' + CB.fmtDateTime(order.delivered_at)) : null,
        order.return_reason ? h('div', { class: 'meta' }, '退回原因 Returned: ' + order.return_reason) : null,
        confirm);
    }
    function deliveryForm(rx) {
      var prefix = 'dl-' + rx.id + '-';
      function field(label, name, control) {
        control.id = prefix + name;
        control.name = name;
        return h('div', { class: 'field' }, h('label', { for: control.id }, label), control);
      }
      var partnerName = field('合作药房名称 Partner pharmacy', 'pharmacy_name', h('input', { maxlength: 120 }));
      partnerName.hidden = true;
      var kind = h('select', { onchange: function () { partnerName.hidden = kind.value !== 'partner'; } },
        h('option', { value: 'hospital' }, '医院药房 Hospital pharmacy'),
        h('option', { value: 'partner' }, '合作药房 Partner pharmacy'));
      var submit = h('button', { type: 'submit', class: 'btn' }, '申请配送 Request delivery');
      var form = h('form', { class: 'delivery-form', novalidate: true, dataset: { prescriptionId: rx.id } },
        h('h4', {}, '送药到家 Have it delivered'),
        h('div', { class: 'fields' },
          field('收件人 Recipient', 'recipient_name', h('input', { maxlength: 40, autocomplete: 'name', required: true })),
          field('手机号 Mobile', 'recipient_phone', h('input', { type: 'tel', inputmode: 'numeric', maxlength: 11,
            pattern: '1[0-9]{10}', autocomplete: 'tel', required: true }))),
        field('收货地址 Address', 'address', h('textarea', { rows: 2, maxlength: 300, autocomplete: 'street-address',
          required: true })),
        field('药房 Pharmacy', 'pharmacy_kind', kind),
        partnerName,
        submit);
      form.addEventListener('submit', function (event) {
        event.preventDefault();
        var body = {
          recipient_name: form.elements.recipient_name.value.trim(),
          recipient_phone: form.elements.recipient_phone.value.trim(),
          address: form.elements.address.value.trim(),
          pharmacy_kind: kind.value
        };
        if (kind.value === 'partner') body.pharmacy_name = form.elements.pharmacy_name.value.trim() || null;
        var problem = !body.recipient_name ? '请填写收件人 Enter the recipient' :
          !/^1\d{10}$/.test(body.recipient_phone) ? '请填写11位手机号 Enter an 11-digit mobile number' :
            body.address.length < 5 ? '请填写详细地址 Enter the full address' : null;
        if (problem) { CB.show('error', problem); return; }
        CB.hideMessage();
        CB.busy(submit, CB.post('/api/v1/prescriptions/' + rx.id + '/delivery', body)).then(function (order) {
          deliveries[order.id] = order;
          CB.show('success', '已提交配送 Delivery requested');
          refreshRx();
        }).catch(showError);
      });
      return form;
    }
    function rxView(rx, order) {
      var approvedAt = rx.reviewed_at && (rx.status === 'approved' || rx.status === 'dispensed');
      return h('div', { class: 'rx card', dataset: { id: rx.id, status: rx.status } },
        h('div', { class: 'row spread' },
          h('h3', {}, '处方 Prescription' + (rx.signed_at ? ' · ' + CB.fmtDateTime(rx.signed_at) : '')),
          badge(RX_STATUS, rx.status, 'rx-status')),
        rx.diagnoses && rx.diagnoses.length ? h('div', { class: 'meta' }, '诊断 Diagnosis: ' + rx.diagnoses.map(function (d) {
          return d.code + (d.title ? ' ' + d.title : '');
        }).join('；')) : null,
        h('ul', { class: 'rx-items' }, rx.items.map(itemView)),
        h('div', { class: 'row spread rx-total' }, h('span', {}, '合计 Total'), h('strong', {}, CB.money(rx.total_fen))),
        rx.status === 'rejected' ? h('div', { class: 'meta' }, '药师已退回医生修改 Returned to the doctor for revision' +
          (rx.review_reason ? '：' + rx.review_reason : '')) : null,
        rx.status === 'pending_review' ? h('div', { class: 'meta' }, '药师审核通过后可申请配送 Once a pharmacist approves it, you can have it delivered') : null,
        approvedAt ? h('div', { class: 'meta' }, '审核通过 Approved ' + CB.fmtDateTime(rx.reviewed_at)) : null,
        rx.status === 'approved' && rx.expires_at ? h('div', { class: 'meta' }, '有效期至 Valid until ' +
          CB.fmtDateTime(rx.expires_at)) : null,
        rx.delivery_id ? deliveryView(rx, order) : rx.status === 'approved' ? deliveryForm(rx) : null);
    }
    function renderRx(rows, orders) {
      var shown = rows.filter(function (rx) { return rx.status !== 'draft'; });
      if (!shown.length) {
        rxShown = {};
        if (!rxBox.querySelector('p.empty-rx')) CB.fill(rxBox, h('p', { class: 'muted empty-rx' }, '暂无处方 No prescriptions yet'));
        return;
      }
      var next = {};
      var els = shown.map(function (rx) {
        var order = rx.delivery_id ? orders[rx.delivery_id] : null;
        // Rebuild a prescription only when it changed: a delivery form being filled in stays as it is.
        var key = JSON.stringify([rx.status, rx.revision, rx.total_fen, rx.delivery_id, rx.review_reason,
          order ? [order.status, order.carrier, order.tracking_number, order.delivered_at] : null]);
        var old = rxShown[rx.id];
        var el = old && old.key === key ? old.el : rxView(rx, order);
        next[rx.id] = { key: key, el: el };
        return el;
      });
      rxShown = next;
      var same = els.length === rxBox.children.length && els.every(function (el, i) { return rxBox.children[i] === el; });
      if (!same) CB.fill(rxBox, els);
      return !same;
    }
    function refreshRx() {
      if (rxBusy) return;
      rxBusy = true;
      CB.get(base + '/prescriptions', { stay: true }).then(function (rows) {
        var wanted = rows.filter(function (rx) {
          var o = rx.delivery_id && deliveries[rx.delivery_id];
          return rx.delivery_id && rx.status !== 'draft' && !(o && (o.status === 'delivered' || o.status === 'returned'));
        });
        return Promise.all(wanted.map(function (rx) {
          return CB.get('/api/v1/delivery-orders/' + rx.delivery_id, { stay: true }).then(function (o) {
            deliveries[o.id] = o;
          });
        })).then(function () {
          // a new or changed prescription often follows the signed record: look for it too
          if (renderRx(rows, deliveries) && (status === 'in_progress' || status === 'closed')) loadRecord();
        });
      }).catch(function (err) {
        if (err && err.status === 401) { stopped = true; location.assign('/login?next=' + encodeURIComponent(location.pathname)); return; }
        if (err && err.code !== 'network_error') showError(err);
      }).finally(function () { rxBusy = false; });
    }
    var ticks = 0;
    setInterval(function () {
      if (document.visibilityState !== 'visible' || leaving || !consultation) return;
      refreshRx();
      ticks += 1;
      if (ticks % 3 === 0 && (status === 'in_progress' || status === 'closed')) loadRecord(); // signed meanwhile
    }, RX_REFRESH_MS);

    // --- the signed record -------------------------------------------------------------------------------
    var recordBox = CB.$('#record');
    var recordShown = null;
    function loadRecord() {
      return CB.get(base + '/record').then(function (versions) {
        var signed = versions.filter(function (r) { return r.status === 'signed'; });
        var r = signed[signed.length - 1];
        if (!r || recordShown === r.id) return;
        recordShown = r.id;
        var rows = [
          ['主诉 Chief complaint', r.chief_complaint, 'chief_complaint'],
          ['现病史 Present illness', r.present_illness, 'present_illness'],
          ['既往史 Past history', r.past_history, 'past_history'],
          ['过敏史 Allergies', r.allergies, 'allergies'],
          ['体格检查 Findings', r.physical_findings, 'physical_findings'],
          ['诊断 Diagnoses', (r.diagnoses || []).map(function (d) { return d.code + ' ' + (d.title || ''); }).join('；'),
            'diagnoses'],
          ['医嘱 Advice', r.advice, 'advice']
        ].filter(function (x) { return x[1]; });
        recordBox.dataset.version = r.version;
        recordBox.dataset.integrity = r.integrity;
        CB.fill(recordBox, [
          h('div', { class: 'row spread' }, h('strong', {}, '第 ' + r.version + ' 版 Version ' + r.version),
            r.integrity === 'verified' ? h('span', { class: 'badge ok' }, '电子签名已验证 Signature verified')
              : h('span', { class: 'badge danger' }, '内容与签名不符 Does not match its signature')),
          h('small', {}, '医生签署 Signed ' + (r.signed_at ? CB.fmtDateTime(r.signed_at) : '')),
          h('dl', { class: 'summary record' }, rows.map(function (x) {
            return [h('dt', {}, x[0]), h('dd', { dataset: { field: x[2] } }, x[1])];
          })),
          r.amend_reason ? h('p', { class: 'muted' }, '修改原因 Amended: ' + r.amend_reason) : null
        ]);
      }).catch(function (err) { if (err && err.code !== 'network_error') showError(err); });
    }

    document.addEventListener('visibilitychange', function () {
      if (document.visibilityState !== 'visible') return;
      sendRead();
      refreshRx();
      if (!ws && !stopped) { retries = 0; connect(); }
    });

    setComposer();
    loadConsultation().then(function () {
      connect();
      refreshRx();
      loadRecord();
    }).catch(function (err) {
      setConn('closed', '未连接 Not connected');
      showError(err);
    });
  }

  if (CB.page === 'patient-consultation') consultationPage();
})();
