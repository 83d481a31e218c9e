/* Pharmacist: the review queue (approve / reject signed prescriptions) and the delivery orders (dispense, ship,
   hand over with the patient's code, return). Both lists refresh themselves; cards the pharmacist is working on
   are kept as they are (typed reasons and codes survive a refresh) unless the order or prescription changed. */
(function () {
  'use strict';
  var CB = window.CB;
  var h = CB.h;
  var REFRESH_MS = 5000;
  var queueBox = CB.$('#queue');
  var ordersBox = CB.$('#orders');
  var statusSelect = CB.$('#order-status');
  var acting = 0; // actions in flight: the timer does not refresh under them
  var revealed = {}; // order id -> the unmasked order the pharmacist asked for (kept across refreshes)
  var timer = null;

  var FREQUENCY = { qd: '每日一次 once daily', bid: '每日两次 twice daily', tid: '每日三次 3× daily',
    qid: '每日四次 4× daily', q6h: '每6小时 every 6 h', q8h: '每8小时 every 8 h', q12h: '每12小时 every 12 h',
    qn: '每晚 at night', qod: '隔日 every other day', qw: '每周一次 weekly' };
  var ROUTE = { oral: '口服 oral', sublingual: '舌下 sublingual', inhaled: '吸入 inhaled', topical: '外用 topical',
    ophthalmic: '滴眼 eye', nasal: '鼻用 nasal', rectal: '直肠 rectal', sc: '皮下 s.c.', im: '肌注 i.m.',
    iv: '静脉 i.v.' };
  var LEVEL = { block: '禁止 Block', warning: '警告 Warning', info: '提示 Info' };
  var LEVEL_CLASS = { block: 'danger', warning: 'warn', info: 'brand' };
  var ORDER_STATUS = { created: '待发药 Created', dispensed: '已发药 Dispensed', shipped: '配送中 Shipped',
    delivered: '已送达 Delivered', returned: '已退回 Returned' };
  var ORDER_CLASS = { created: 'brand', dispensed: 'warn', shipped: 'brand', delivered: 'ok', returned: 'danger' };
  var PHARMACY = { hospital: '医院药房 Hospital pharmacy', partner: '合作药房 Partner pharmacy' };
  var PAYMENT = { not_required: '无需支付 Not required', paid: '已支付 Paid', unpaid: '未支付 Unpaid' };
  // Codes app.js does not translate: Chinese first, the API's message after.
  var ERRORS = {
    bad_prescription_state: '处方状态已变化（可能已被其他药师审核）The prescription changed (another pharmacist may have reviewed it)',
    prescription_expired: '处方已过有效期 The prescription has expired',
    prescription_not_dispensable: '只有已审核且在有效期内的处方可以发药 Only an approved, unexpired prescription can be dispensed',
    bad_delivery_state: '订单状态已变化 The order changed meanwhile',
    wrong_handover_code: '交接码不正确 The hand-over code does not match',
    payment_required: '订单尚未支付 The order is not paid yet'
  };

  function fail(err) {
    if (err instanceof CB.ApiError && ERRORS[err.code]) {
      CB.show('error', ERRORS[err.code] + (err.message ? ' — ' + err.message : ''), err.code);
    } else {
      CB.showError(err);
    }
  }

  function th(zh, en, cls) { return h('th', { class: cls }, zh, ' ', h('small', {}, en)); }
  function when(iso) { return iso ? CB.fmtDateTime(iso) : '—'; }
  function shortId(id) { return String(id).slice(-8); } // UUIDv7: the random tail tells them apart
  function num(x) { return Math.round(x * 1000) / 1000; }
  function field(labelText, control) {
    return h('div', { class: 'field' }, h('label', {}, labelText), control);
  }

  /* Keep the container's cards in the rows' order: a card whose data did not change is left in place (its inputs
     and focus survive), a changed one is built again, a gone one removed. */
  function reconcile(box, rows, build, empty) {
    var existing = {};
    Array.prototype.forEach.call(box.children, function (node) {
      if (node.dataset && node.dataset.id) existing[node.dataset.id] = node;
    });
    if (!rows.length) {
      CB.fill(box, empty);
      return;
    }
    var keep = {};
    rows.forEach(function (row, i) {
      var sig = JSON.stringify(row) + (revealed[row.id] ? JSON.stringify(revealed[row.id]) : '');
      var node = existing[row.id];
      if (!node || node.sig !== sig) {
        var fresh = build(row);
        fresh.sig = sig;
        if (node) box.replaceChild(fresh, node);
        node = fresh;
      }
      keep[row.id] = true;
      if (box.children[i] !== node) box.insertBefore(node, box.children[i] || null);
    });
    Array.prototype.slice.call(box.children).forEach(function (node) {
      if (!(node.dataset && keep[node.dataset.id])) box.removeChild(node);
    });
  }

  function act(button, promise, message) {
    acting += 1;
    CB.hideMessage();
    return CB.busy(button, promise).then(function (answer) {
      CB.show('success', message);
      return answer;
    }).catch(fail).finally(function () {
      acting -= 1;
      refreshAll(true);
    });
  }

  // --- the review queue ------------------------------------------------------------------------------------

  function details(obj) {
    var keys = Object.keys(obj || {});
    if (!keys.length) return null;
    return h('small', { class: 'details' }, ' · ' + keys.map(function (k) {
      var v = obj[k];
      return k + ': ' + (Array.isArray(v) ? v.join(', ') : v !== null && typeof v === 'object' ? JSON.stringify(v) : v);
    }).join('; '));
  }

  function findingsBlock(rx) {
    var overrides = {};
    (rx.overrides || []).forEach(function (o) { overrides[o.key] = o; });
    var findings = rx.findings || [];
    var list = findings.length ? h('ul', { class: 'findings' }, findings.map(function (f) {
      var o = overrides[f.key];
      return h('li', { class: 'finding level-' + f.level + (o ? ' overridden' : ''),
        dataset: { code: f.code, level: f.level, key: f.key } },
      h('span', { class: 'badge ' + (LEVEL_CLASS[f.level] || '') }, LEVEL[f.level] || f.level), ' ',
      f.rule ? h('b', {}, '[' + f.rule + '] ') : null, f.message,
      f.lines && f.lines.length ? h('small', {}, ' （第 ' + f.lines.join(', ') + ' 行 line ' + f.lines.join(', ') + '）') : null,
      details(f.details),
      o ? h('div', { class: 'override-note' }, h('b', {}, '医生已说明 Overridden by the doctor: '), o.reason) : null);
    })) : h('p', { class: 'muted' }, '系统审核未发现问题 The automatic checks found nothing');
    var overrideList = (rx.overrides || []).length ? h('div', { class: 'overrides-box' },
      h('h4', {}, '医生的警告说明 ', h('small', {}, "Doctor's overrides")),
      h('ul', { class: 'overrides' }, rx.overrides.map(function (o) {
        return h('li', { class: 'override', dataset: { code: o.code, key: o.key } },
          h('code', {}, o.code), o.rule ? ' [' + o.rule + ']' : '', ' — ', h('span', { class: 'reason' }, o.reason));
      }))) : null;
    return h('div', { class: 'checks' }, h('h4', {}, '审核结果 ', h('small', {}, 'Check findings')), list, overrideList);
  }

  function itemsTable(rx) {
    var flagged = {};
    (rx.findings || []).forEach(function (f) {
      if (f.level !== 'info') (f.lines || []).forEach(function (n) { flagged[n] = true; });
    });
    return h('div', { class: 'table-wrap' }, h('table', { class: 'rx-items' },
      h('thead', {}, h('tr', {}, th('#', '', 'num'), th('药品', 'Drug'), th('单次', 'Dose'), th('频次', 'Frequency'),
        th('途径', 'Route'), th('天数', 'Days', 'num'), th('数量', 'Qty', 'num'), th('金额', 'Amount', 'num'))),
      h('tbody', {}, rx.items.map(function (i) {
        return h('tr', { class: 'rx-item' + (flagged[i.line] ? ' flagged' : ''), dataset: { line: i.line, drugCode: i.drug_code } },
          h('td', { class: 'num' }, i.line),
          h('td', {}, h('b', { class: 'drug-name' }, i.drug_name), ' ', h('span', { class: 'strength' }, i.strength)),
          h('td', { class: 'dose' }, num(i.dose) + ' ' + i.dose_unit),
          h('td', { class: 'frequency', title: FREQUENCY[i.frequency] || '' }, i.frequency, ' ',
            h('small', {}, FREQUENCY[i.frequency] || '')),
          h('td', { class: 'route' }, ROUTE[i.route] || i.route),
          h('td', { class: 'num rx-days' }, i.days),
          h('td', { class: 'num quantity' }, i.quantity + ' ' + i.unit),
          h('td', { class: 'num amount' }, CB.money(i.amount_fen)));
      })),
      h('tfoot', {}, h('tr', {}, h('td', { colspan: 7, class: 'num' }, '合计 Total'),
        h('td', { class: 'num total' }, h('b', {}, CB.money(rx.total_fen)))))));
  }

  function rxCard(rx) {
    var reason = h('textarea', { class: 'reject-reason', rows: 2, maxlength: 500, minlength: 2,
      placeholder: '驳回原因（驳回时必填）Reason, required to reject', 'aria-label': '驳回原因 Reason to reject' });
    var note = h('input', { class: 'approve-note', maxlength: 500, placeholder: '审核备注（可选）Note (optional)',
      'aria-label': '审核备注 Note' });
    var approve = h('button', { type: 'button', class: 'btn approve', onclick: function () {
      var body = note.value.trim() ? { note: note.value.trim() } : {};
      act(approve, CB.post('/api/v1/prescriptions/' + rx.id + '/approve', body),
        '处方已审核通过 Prescription approved');
    } }, '审核通过 Approve');
    var reject = h('button', { type: 'button', class: 'btn danger reject', onclick: function () {
      var text = reason.value.trim();
      if (text.length < 2) {
        CB.show('error', '请填写驳回原因（至少 2 个字）Give a reason to reject (at least 2 characters)');
        reason.focus();
        return;
      }
      act(reject, CB.post('/api/v1/prescriptions/' + rx.id + '/reject', { reason: text }),
        '处方已驳回，退回医生修改 Prescription rejected: it goes back to the doctor');
    } }, '驳回 Reject');
    var blocked = (rx.findings || []).some(function (f) { return f.level === 'block'; });
    var expired = rx.expires_at && Date.parse(rx.expires_at) <= CB.now().getTime();
    return h('div', { class: 'card rx-card', dataset: { id: rx.id, status: rx.status } },
      h('div', { class: 'card-head' },
        h('h3', {}, '处方 Prescription ', h('code', {}, shortId(rx.id)),
          rx.revision > 1 ? h('small', {}, ' 第 ' + rx.revision + ' 版 revision ' + rx.revision) : null),
        h('span', { class: 'row' },
          rx.long_term ? h('span', { class: 'badge warn long-term' }, '长期处方 Long-term') : null,
          rx.integrity !== 'verified' ? h('span', { class: 'badge danger' }, '签名校验失败 Signature ' + rx.integrity) :
            h('span', { class: 'badge ok' }, '签名有效 Signed'),
          expired ? h('span', { class: 'badge danger expired' }, '已过期 Expired') :
            h('span', { class: 'badge brand' }, '待审核 Pending review'))),
      h('p', { class: 'meta muted' },
        '签名 Signed ', h('span', { class: 'signed-at' }, when(rx.signed_at)), ' · 有效期至 Valid until ',
        h('span', { class: 'expires-at' }, when(rx.expires_at)), ' · 问诊 Consultation ', h('code', {}, shortId(rx.consultation_id))),
      h('div', { class: 'diagnoses' }, h('b', {}, '诊断 Diagnoses: '), rx.diagnoses.length ?
        h('ul', { class: 'inline-list' }, rx.diagnoses.map(function (d) {
          return h('li', { class: 'diagnosis', dataset: { code: d.code } }, h('code', {}, d.code), ' ', d.title || '');
        })) : h('span', { class: 'muted' }, '无 None')),
      itemsTable(rx),
      findingsBlock(rx),
      blocked ? h('p', { class: 'block-note' }, '含禁止项，请驳回 A block finding: reject it') : null,
      h('div', { class: 'review' },
        field('审核备注 Note', note),
        field('驳回原因 Reason to reject', reason),
        h('div', { class: 'row' }, approve, reject)));
  }

  function loadQueue() {
    return CB.get('/api/v1/pharmacy/review-queue').then(function (rows) {
      var count = CB.$('#queue-count');
      count.textContent = String(rows.length);
      count.hidden = !rows.length;
      reconcile(queueBox, rows, rxCard, h('p', { class: 'empty' }, '没有待审核的处方 No prescriptions waiting for review'));
    });
  }

  // --- delivery orders -------------------------------------------------------------------------------------

  function recipientBlock(o) {
    var full = revealed[o.id];
    var shown = full || o;
    return h('div', { class: 'recipient' + (full ? ' unmasked' : '') },
      h('b', {}, '收件人 Recipient: '), h('span', { class: 'recipient-name' }, shown.recipient_name), ' · ',
      h('span', { class: 'recipient-phone' }, shown.recipient_phone), h('br', {}),
      h('b', {}, '地址 Address: '), h('span', { class: 'address' }, shown.address),
      full ? null : h('small', {}, ' （已脱敏 masked）'));
  }

  function orderActions(o) {
    var base = '/api/v1/delivery-orders/' + o.id;
    var out = [];
    if (o.status === 'created') {
      var dispense = h('button', { type: 'button', class: 'btn dispense', onclick: function () {
        act(dispense, CB.post(base + '/dispense'), '已发药 Dispensed');
      } }, '发药 Dispense');
      out.push(h('div', { class: 'row' }, dispense));
    }
    if (o.status === 'dispensed') {
      var carrier = h('input', { class: 'carrier', maxlength: 60, placeholder: '顺丰 / 京东 …', 'aria-label': '承运商 Carrier' });
      var tracking = h('input', { class: 'tracking', maxlength: 60, pattern: '[A-Za-z0-9-]{4,}',
        placeholder: 'SF1234567890', 'aria-label': '运单号 Tracking number' });
      var ship = h('button', { type: 'button', class: 'btn ship', onclick: function () {
        var body = { carrier: carrier.value.trim(), tracking_number: tracking.value.trim() };
        if (!body.carrier) {
          CB.show('error', '请填写承运商 Enter the carrier');
          carrier.focus();
          return;
        }
        if (!/^[A-Za-z0-9-]{4,60}$/.test(body.tracking_number)) {
          CB.show('error', '运单号为 4 位以上字母、数字或 - Tracking number: 4 or more letters, digits or -');
          tracking.focus();
          return;
        }
        act(ship, CB.post(base + '/ship', body), '已发货 Shipped');
      } }, '发货 Ship');
      out.push(h('div', { class: 'fields ship-fields' }, field('承运商 Carrier', carrier),
        field('运单号 Tracking number', tracking)), h('div', { class: 'row' }, ship));
    }
    if (o.status === 'shipped') {
      var code = h('input', { class: 'handover-code', inputmode: 'numeric', maxlength: 6, pattern: '[0-9]{6}',
        autocomplete: 'off', placeholder: '6 位数字 6 digits', 'aria-label': '交接码 Hand-over code' });
      var deliver = h('button', { type: 'button', class: 'btn deliver', onclick: function () {
        var value = code.value.trim();
        if (!/^\d{6}$/.test(value)) {
          CB.show('error', '请输入患者提供的 6 位交接码 Enter the patient\'s 6-digit hand-over code');
          code.focus();
          return;
        }
        act(deliver, CB.post(base + '/deliver', { handover_code: value }), '已送达 Delivered');
      } }, '确认送达 Deliver');
      out.push(h('div', { class: 'row handover' }, field('交接码 Hand-over code', code), deliver));
    }
    if (o.status === 'dispensed' || o.status === 'shipped') {
      var reason = h('input', { class: 'return-reason', maxlength: 500, placeholder: '退回原因 Reason',
        'aria-label': '退回原因 Return reason' });
      var back = h('button', { type: 'button', class: 'btn danger small return', onclick: function () {
        var text = reason.value.trim();
        if (text.length < 2) {
          CB.show('error', '请填写退回原因（至少 2 个字）Give a reason for the return (at least 2 characters)');
          reason.focus();
          return;
        }
        act(back, CB.post(base + '/return', { reason: text }), '订单已退回 Order returned');
      } }, '退回 Return');
      out.push(h('details', { class: 'panel return-panel' }, h('summary', {}, '退回订单 Return the order'),
        h('div', { class: 'row' }, reason, back)));
    }
    return out.length ? h('div', { class: 'actions' }, out) : null;
  }

  function orderCard(o) {
    var showAddress = h('button', { type: 'button', class: 'btn secondary small show-address', onclick: function () {
      if (revealed[o.id]) { // hide it again
        delete revealed[o.id];
        refreshAll(true);
        return;
      }
      acting += 1;
      CB.busy(showAddress, CB.get('/api/v1/delivery-orders/' + o.id)).then(function (full) {
        revealed[o.id] = { recipient_name: full.recipient_name, recipient_phone: full.recipient_phone,
          address: full.address };
        var card = ordersBox.querySelector('.order-card[data-id="' + o.id + '"]');
        if (card) {
          var fresh = orderCard(o);
          fresh.sig = JSON.stringify(o) + JSON.stringify(revealed[o.id]);
          card.replaceWith(fresh);
        }
      }).catch(fail).finally(function () { acting -= 1; });
    } }, revealed[o.id] ? '隐藏地址 Hide address' : '查看地址 Show address');
    var track = o.carrier || o.tracking_number ? h('p', { class: 'tracking-line' }, h('b', {}, '物流 Carrier: '),
      h('span', { class: 'carrier-name' }, o.carrier || '—'), ' · ', h('b', {}, '运单号 Tracking: '),
      h('span', { class: 'tracking-number' }, o.tracking_number || '—')) : null;
    var times = [['下单 Created', o.created_at], ['发药 Dispensed', o.dispensed_at], ['发货 Shipped', o.shipped_at],
      ['送达 Delivered', o.delivered_at], ['退回 Returned', o.returned_at]]
      .filter(function (t) { return t[1]; }).map(function (t) { return t[0] + ' ' + CB.fmtDateTime(t[1]); }).join(' · ');
    return h('div', { class: 'card order-card', dataset: { id: o.id, status: o.status } },
      h('div', { class: 'card-head' },
        h('h3', {}, h('span', { class: 'pharmacy' }, o.pharmacy_name), ' ',
          h('small', {}, PHARMACY[o.pharmacy_kind] || o.pharmacy_kind)),
        h('span', { class: 'badge order-status ' + (ORDER_CLASS[o.status] || ''), dataset: { status: o.status } },
          ORDER_STATUS[o.status] || o.status)),
      h('p', { class: 'meta muted' }, '订单 Order ', h('code', {}, shortId(o.id)), ' · 处方 Prescription ',
        h('code', {}, shortId(o.prescription_id)), ' · 支付 Payment ', PAYMENT[o.payment_status] || o.payment_status),
      h('div', { class: 'row spread' }, recipientBlock(o), showAddress),
      h('p', {}, h('b', {}, '金额 Total: '), h('span', { class: 'order-total' }, CB.money(o.total_fen))),
      track,
      o.return_reason ? h('p', { class: 'return-line' }, h('b', {}, '退回原因 Return reason: '), o.return_reason) : null,
      h('p', { class: 'muted times' }, times),
      orderActions(o));
  }

  function loadOrders() {
    var status = statusSelect.value;
    var path = '/api/v1/pharmacy/delivery-orders' + (status ? '?status=' + encodeURIComponent(status) : '');
    return CB.get(path).then(function (rows) {
      if (status !== statusSelect.value) return; // the filter changed while this was loading
      reconcile(ordersBox, rows, orderCard, h('p', { class: 'empty' }, status ?
        '没有“' + (ORDER_STATUS[status] || status) + '”的订单 No orders in this state' : '暂无配送订单 No delivery orders yet'));
    });
  }

  function refreshAll(force) {
    if (!force && (acting || document.hidden)) return Promise.resolve();
    return Promise.all([loadQueue(), loadOrders()]).then(function () {
      CB.$('#refreshed').textContent = '自动刷新 Auto-refresh · ' + CB.fmtTime(CB.now().toISOString());
    }).catch(fail);
  }

  statusSelect.addEventListener('change', function () {
    CB.fill(ordersBox, h('p', { class: 'muted' }, '加载中… Loading…'));
    loadOrders().catch(fail);
  });
  CB.$('#order-filter').addEventListener('submit', function (event) { event.preventDefault(); });
  document.addEventListener('visibilitychange', function () { if (!document.hidden) refreshAll(); });
  refreshAll(true);
  timer = setInterval(refreshAll, REFRESH_MS);
  window.addEventListener('pagehide', function () { clearInterval(timer); });
})();
