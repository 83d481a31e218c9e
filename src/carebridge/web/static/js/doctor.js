/* Doctor: the day's sessions, each with its queue and a "call next" button. The queue refreshes itself. */
(function () {
  'use strict';
  var CB = window.CB;
  var h = CB.h;
  var REFRESH_MS = 8000;
  var dayInput = CB.$('#day');
  var list = CB.$('#session-list');
  var timer = null;
  var calling = false;
  dayInput.value = CB.today;

  function th(zh, en, cls) { return h('th', { class: cls }, zh, ' ', h('small', {}, en)); }

  function queueTable(entries) {
    if (!entries.length) return h('p', { class: 'muted' }, '暂无签到患者 No one has checked in yet');
    return h('div', { class: 'table-wrap' }, h('table', { class: 'queue' },
      h('thead', {}, h('tr', {}, th('号', 'No.', 'num'), th('患者', 'Patient'), th('状态', 'State'), th('签到', 'Checked in'))),
      h('tbody', {}, entries.map(function (e) {
        return h('tr', { class: 'queue-row ' + e.state, dataset: { appointmentId: e.appointment_id, number: e.number,
          state: e.state } },
        h('td', { class: 'num' }, h('b', {}, e.number)), h('td', {}, e.patient_name), h('td', {}, CB.badge('queue', e.state)),
        h('td', {}, CB.fmtTime(e.checked_in_at)));
      }))));
  }

  function nowServing(entries) {
    var called = entries.filter(function (e) { return e.state === 'called'; });
    var waiting = entries.filter(function (e) { return e.state === 'waiting'; }).length;
    var current = called.length ? called[called.length - 1] : null;
    return h('p', { class: 'now-serving' }, current ? ['当前就诊 Now serving: ', h('b', {}, current.number + ' 号 ' +
      current.patient_name)] : '当前无人就诊 No one in the room', ' · 候诊 Waiting: ', h('b', { class: 'waiting-count' }, waiting));
  }

  function sessionCard(schedule) {
    var queueBox = h('div', { class: 'queue-box' }, h('p', { class: 'muted' }, '加载中… Loading…'));
    var servingBox = h('div', {});
    var button = h('button', { type: 'button', class: 'btn big call-next', disabled: schedule.status !== 'open',
      onclick: function () { callNext(schedule, button, card); } }, '叫号 Call next');
    var card = h('div', { class: 'card session', dataset: { scheduleId: schedule.id } },
      h('div', { class: 'card-head' },
        h('h3', {}, CB.label('session', schedule.session) + ' ' + CB.fmtTime(schedule.starts_at) + '–' +
          CB.fmtTime(schedule.ends_at) + ' · ' + schedule.department_name),
        CB.badge('status', schedule.status)),
      servingBox, h('div', { class: 'row' }, button), queueBox);
    // The queue board is a projection fed by events, so it may lag a call just made: until it shows the number
    // that call-next answered, show that answer (the earlier called number is done) and look again shortly.
    card.expected = null;
    card.refresh = function () {
      return CB.get('/api/v1/schedules/' + schedule.id + '/queue').then(function (entries) {
        var expected = card.expected;
        if (expected !== null) {
          var seen = entries.some(function (e) { return e.number === expected && e.state !== 'waiting'; });
          if (seen || Date.now() - card.expectedAt > 30000) {
            card.expected = null;
          } else {
            entries = entries.map(function (e) {
              var state = e.number === expected ? 'called' : e.state === 'called' ? 'done' : e.state;
              return Object.assign({}, e, { state: state });
            });
            setTimeout(function () { card.refresh().catch(CB.showError); }, 700);
          }
        }
        CB.fill(servingBox, nowServing(entries));
        CB.fill(queueBox, queueTable(entries));
      });
    };
    return card;
  }

  function callNext(schedule, button, card) {
    CB.hideMessage();
    calling = true;
    CB.busy(button, CB.post('/api/v1/schedules/' + schedule.id + '/queue/call-next')).then(function (appt) {
      if (appt) {
        CB.show('success', '请 ' + appt.queue_number + ' 号 ' + (appt.patient_name || '') + ' 就诊 Calling number ' +
          appt.queue_number);
        card.expected = appt.queue_number;
        card.expectedAt = Date.now();
      } else {
        CB.show('info', '候诊队列已空 No one is waiting');
      }
      return card.refresh();
    }).catch(CB.showError).finally(function () { calling = false; });
  }

  function refreshAll() {
    if (calling || document.hidden) return Promise.resolve();
    var cards = Array.prototype.slice.call(list.querySelectorAll('.session'));
    return Promise.all(cards.map(function (c) { return c.refresh(); })).then(function () {
      CB.$('#refreshed').textContent = '自动刷新 Auto-refresh · ' + CB.fmtTime(CB.now().toISOString());
    }).catch(CB.showError);
  }

  function load() {
    clearInterval(timer);
    var day = dayInput.value || CB.today;
    var query = new URLSearchParams({ date_from: day, date_to: day });
    return CB.get('/api/v1/doctor/schedules?' + query).then(function (rows) {
      CB.fill(list, rows.length ? rows.map(sessionCard) :
        h('p', { class: 'empty' }, CB.fmtDay(day) + ' 没有出诊 No sessions on this day'));
      timer = setInterval(refreshAll, REFRESH_MS);
      return refreshAll();
    }).catch(CB.showError);
  }

  CB.$('#day-form').addEventListener('submit', function (event) {
    event.preventDefault();
    load();
  });
  document.addEventListener('visibilitychange', function () { if (!document.hidden) refreshAll(); });
  load();
})();
