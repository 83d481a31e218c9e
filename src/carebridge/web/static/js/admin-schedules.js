/* Hospital admin: the hospital's sessions with every slot's channel pools; move places; stop a session. */
(function () {
  'use strict';
  var CB = window.CB;
  var h = CB.h;
  var hospitalId = CB.data.hospitalId;
  var CHANNEL_ORDER = ['platform', 'onsite', 'referral'];
  var base = '/api/v1/hospitals/' + hospitalId;

  var list = CB.$('#schedule-list');
  var from = CB.$('#date-from');
  var to = CB.$('#date-to');
  var department = CB.$('#department');
  var includeStopped = CB.$('#include-stopped');
  from.value = CB.today;
  to.value = CB.addDays(CB.today, 6);

  function channelsOf(schedules) {
    var seen = {};
    schedules.forEach(function (s) {
      s.slots.forEach(function (slot) { slot.pools.forEach(function (p) { seen[p.channel] = true; }); });
    });
    return Object.keys(seen).sort(function (a, b) {
      var ia = CHANNEL_ORDER.indexOf(a), ib = CHANNEL_ORDER.indexOf(b);
      return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || (a < b ? -1 : 1);
    });
  }

  function poolCell(pool, channel) {
    if (!pool) return h('td', { class: 'pool muted', dataset: { channel: channel } }, '–');
    return h('td', { class: 'pool', dataset: { channel: channel, capacity: pool.capacity, booked: pool.booked,
      free: pool.free } },
    h('span', { class: 'of' }, '容量 '), h('b', { class: 'capacity' }, pool.capacity), h('span', { class: 'of' }, ' · 已约 '),
    h('span', { class: 'booked' }, pool.booked), h('span', { class: 'of' }, ' · 余 '), h('span', { class: 'free' }, pool.free),
    pool.held ? h('span', { class: 'of' }, ' · 保留 ' + pool.held) : null);
  }

  function poolTable(schedule, channels) {
    var totals = {};
    var rows = schedule.slots.map(function (slot) {
      var byChannel = {};
      slot.pools.forEach(function (p) {
        byChannel[p.channel] = p;
        var t = totals[p.channel] = totals[p.channel] || { capacity: 0, booked: 0, held: 0, free: 0 };
        t.capacity += p.capacity; t.booked += p.booked; t.held += p.held; t.free += p.free;
      });
      return h('tr', { dataset: { slotId: slot.id } }, h('td', {}, slot.local_time),
        channels.map(function (c) { return poolCell(byChannel[c], c); }));
    });
    return h('div', { class: 'table-wrap' }, h('table', { class: 'pools' },
      h('thead', {}, h('tr', {}, h('th', {}, '时段 Slot'), channels.map(function (c) {
        return h('th', {}, CB.label('channel', c), h('br'), h('small', {}, 'capacity · booked · free'));
      }))),
      h('tbody', {}, rows),
      h('tfoot', {}, h('tr', { class: 'totals' }, h('th', {}, '合计 Total'), channels.map(function (c) {
        return poolCell(totals[c], c);
      })))));
  }

  function moveForm(schedule, channels) {
    var options = channels.concat(CHANNEL_ORDER.filter(function (c) { return channels.indexOf(c) < 0; }));
    var slot = h('select', { name: 'slot' }, h('option', { value: '' }, '全部时段 Whole session'),
      schedule.slots.map(function (s) { return h('option', { value: s.id }, s.local_time); }));
    var fromChannel = h('select', { name: 'from' }, options.map(function (c) {
      return h('option', { value: c, selected: c === 'onsite' }, CB.label('channel', c));
    }));
    var toChannel = h('select', { name: 'to' }, options.map(function (c) {
      return h('option', { value: c, selected: c === 'platform' }, CB.label('channel', c));
    }));
    var amount = h('input', { type: 'number', name: 'amount', min: 1, max: 500, value: 1, required: true });
    var submit = h('button', { type: 'submit', class: 'btn small' }, '调整 Move');
    var form = h('form', { class: 'inline move-form', onsubmit: function (event) {
      event.preventDefault();
      CB.hideMessage();
      var body = { from_channel: fromChannel.value, to_channel: toChannel.value, amount: parseInt(amount.value, 10) };
      if (slot.value) body.slot_id = slot.value;
      CB.busy(submit, CB.post('/api/v1/schedules/' + schedule.id + '/pools/move', body)).then(function (answer) {
        CB.show('success', '已从' + CB.label('channel', body.from_channel) + '调整 ' + body.amount + ' 个号到' +
          CB.label('channel', body.to_channel) + '（' + answer.slots_changed + ' 个时段）Moved in ' +
          answer.slots_changed + ' slot(s)');
        return load();
      }).catch(CB.showError);
    } },
    field('时段 Slot', slot), field('从 From', fromChannel), field('到 To', toChannel), field('每时段数量 Places per slot', amount),
    submit);
    return h('details', { class: 'panel' }, h('summary', {}, '调整号源 Move places between channels'), form);
  }

  function stopForm(schedule) {
    var reason = h('input', { name: 'reason', required: true, maxlength: 200, placeholder: '如：医生临时出差 e.g. doctor away' });
    var submit = h('button', { type: 'submit', class: 'btn small danger solid' }, '确认停诊 Stop session');
    var form = h('form', { class: 'inline stop-form', onsubmit: function (event) {
      event.preventDefault();
      CB.hideMessage();
      if (!reason.value.trim()) { CB.show('error', '请填写停诊原因 Give a reason'); return; }
      CB.busy(submit, CB.post('/api/v1/schedules/' + schedule.id + '/stop', { reason: reason.value.trim() }))
        .then(function (answer) {
          CB.show('success', '已停诊，取消预约 ' + answer.cancelled_appointments + ' 个，已通知患者。Stopped; ' +
            answer.cancelled_appointments + ' appointment(s) cancelled and patients told.');
          return load();
        }).catch(CB.showError);
    } }, field('停诊原因 Reason', reason), submit);
    return h('details', { class: 'panel' }, h('summary', {}, '停诊 Stop this session'),
      h('p', { class: 'muted' }, '停诊将取消该出诊的全部预约并通知患者。Stopping cancels every booking and tells the patients.'),
      form);
  }

  function field(text, input) { return h('div', { class: 'field' }, h('label', {}, text), input); }

  function scheduleCard(schedule, channels) {
    var ended = new Date(schedule.ends_at) <= CB.now();
    return h('div', { class: 'card schedule', dataset: { scheduleId: schedule.id, status: schedule.status } },
      h('div', { class: 'card-head' },
        h('h3', {}, CB.fmtDay(schedule.service_date) + ' ' + CB.label('session', schedule.session) + ' ' +
          CB.fmtTime(schedule.starts_at) + '–' + CB.fmtTime(schedule.ends_at)),
        CB.badge('status', schedule.status)),
      h('div', { class: 'muted' }, [schedule.practitioner_name + ' ' + CB.label('title', schedule.practitioner_title),
        schedule.department_name, CB.money(schedule.fee_fen), '平台余号 ' + schedule.free].join(' · ')),
      schedule.stopped_reason ? h('p', { class: 'muted' }, '停诊原因 Reason: ' + schedule.stopped_reason) : null,
      poolTable(schedule, channels),
      schedule.status === 'open' && !ended ? [moveForm(schedule, channels), stopForm(schedule)] : null);
  }

  function load() {
    var query = new URLSearchParams({ date_from: from.value, date_to: to.value, with_slots: 'true',
      include_stopped: includeStopped.checked ? 'true' : 'false' });
    if (department.value) query.set('department_id', department.value);
    return CB.get(base + '/schedules?' + query).then(function (rows) {
      var channels = channelsOf(rows);
      var booked = 0, capacity = 0;
      rows.forEach(function (s) {
        s.slots.forEach(function (slot) { slot.pools.forEach(function (p) { booked += p.booked; capacity += p.capacity; }); });
      });
      CB.$('#schedule-summary').textContent = rows.length + ' 个出诊 sessions · 已约 ' + booked + ' / 容量 ' + capacity +
        ' booked / places';
      CB.fill(list, rows.length ? rows.map(function (s) { return scheduleCard(s, channels); }) :
        h('p', { class: 'empty' }, '该日期范围没有排班。No sessions in this range: ', h('a', { href: '/admin/templates' },
          '用模板生成 Generate from templates')));
    }).catch(CB.showError);
  }

  CB.$('#schedule-filter').addEventListener('submit', function (event) {
    event.preventDefault();
    CB.hideMessage();
    load();
  });
  includeStopped.addEventListener('change', load);
  CB.get(base + '/departments').then(function (rows) {
    rows.forEach(function (d) { department.appendChild(h('option', { value: d.id }, d.name)); });
  }).catch(CB.showError);
  load();
})();
