/* Patient after booking: my appointments (cancel, reschedule, check in), live queue position, messages. */
(function () {
  'use strict';
  var CB = window.CB;
  var h = CB.h;

  function when(appt) {
    return CB.fmtDay(appt.service_date) + ' ' + CB.fmtTime(appt.starts_at) + '–' + CB.fmtTime(appt.ends_at);
  }

  function checkIn(appointmentId, button) {
    return CB.busy(button, CB.post('/api/v1/appointments/' + appointmentId + '/check-in')).then(function (appt) {
      CB.flashNext('success', '签到成功，您的号码是 ' + appt.queue_number + ' 号 Checked in: number ' + appt.queue_number);
      location.assign('/patient/appointments/' + appointmentId + '/queue');
    });
  }

  // --- /patient/appointments -------------------------------------------------------------------------
  function appointmentsPage() {
    var list = CB.$('#appointment-list');
    var includePast = CB.$('#include-past');

    function actions(appt) {
      var box = h('div', { class: 'row mt' });
      var isToday = appt.service_date === CB.today;
      if (appt.status === 'booked') {
        if (isToday) {
          var checkInButton = h('button', { type: 'button', class: 'btn small', dataset: { action: 'check-in' },
            onclick: function () { checkIn(appt.id, checkInButton).catch(CB.showError); } }, '签到 Check in');
          box.appendChild(checkInButton);
        }
        box.appendChild(h('a', { class: 'btn small secondary', href: '/patient/appointments/' + appt.id + '/reschedule',
          dataset: { action: 'reschedule' } }, '改约 Reschedule'));
        box.appendChild(h('button', { type: 'button', class: 'btn small danger', dataset: { action: 'cancel' },
          onclick: function () { confirmRow.hidden = false; } }, '取消预约 Cancel'));
      }
      if (appt.status === 'checked_in' || (appt.status === 'booked' && isToday)) {
        box.appendChild(h('a', { class: 'btn small secondary', href: '/patient/appointments/' + appt.id + '/queue',
          dataset: { action: 'queue' } }, '查看排队 Queue'));
      }
      var confirmButton = h('button', { type: 'button', class: 'btn small danger solid', dataset: { action: 'confirm-cancel' },
        onclick: function () { cancel(appt, confirmButton); } }, '确认取消 Confirm cancel');
      var confirmRow = h('div', { class: 'row mt', hidden: true },
        h('span', {}, '确定取消这个预约吗？Cancel this appointment?'), confirmButton,
        h('button', { type: 'button', class: 'btn small secondary', onclick: function () { confirmRow.hidden = true; } },
          '不取消 Keep it'));
      return [box.children.length ? box : null, confirmRow];
    }

    function cancel(appt, button) {
      CB.hideMessage();
      CB.busy(button, CB.post('/api/v1/appointments/' + appt.id + '/cancel', { reason: 'patient_request' }))
        .then(function () {
          CB.show('success', '已取消预约 Appointment cancelled');
          return load();
        })
        .catch(CB.showError);
    }

    function load() {
      return CB.get('/api/v1/appointments' + (includePast.checked ? '?include_past=true' : '')).then(function (rows) {
        CB.fill(list, rows.length ? rows.map(function (appt) {
          return h('li', { class: 'list-item', dataset: { appointmentId: appt.id, status: appt.status } },
            h('div', { class: 'row spread' }, h('span', { class: 'title' }, appt.practitioner_name + ' · ' + appt.department_name),
              CB.badge('status', appt.status)),
            h('div', { class: 'meta' }, appt.hospital_name),
            h('div', {}, when(appt)),
            h('div', { class: 'meta' }, ['就诊人 ' + appt.patient_name, CB.money(appt.fee_fen),
              appt.queue_number ? '排队号 ' + appt.queue_number + ' 号' : null,
              appt.cancel_reason ? '取消原因 ' + appt.cancel_reason : null].filter(Boolean).join(' · ')),
            actions(appt));
        }) : h('li', { class: 'empty' }, '暂无预约 No appointments. ', h('a', { href: '/patient' }, '去挂号 Book one')));
      }).catch(CB.showError);
    }
    includePast.addEventListener('change', load);
    load();
  }

  // --- /patient/appointments/{id}/queue: live position (Server-Sent Events) ----------------------------
  var QUEUE_TEXT = {
    not_checked_in: '尚未签到，请到院后签到 Not checked in yet',
    waiting: '候诊中，请留意叫号 Waiting: watch for your number',
    called: '请到诊室就诊 It is your turn: please go in',
    done: '就诊已结束 Visit finished',
    left: '已离开队列 You left the queue'
  };

  function queuePage() {
    var appointmentId = CB.data.appointmentId;
    var appt = null;
    var stream = null;
    var checkInButton = CB.$('#check-in-button');

    function render(pos) {
      var box = CB.$('#queue-status');
      box.dataset.state = pos.state;
      CB.$('#queue-number').textContent = pos.number === null ? '–' : pos.number;
      CB.$('#queue-state').textContent = QUEUE_TEXT[pos.state] || pos.state;
      CB.$('#queue-ahead').textContent = pos.state === 'waiting' ? pos.ahead : '–';
      CB.$('#queue-serving').textContent = pos.now_serving === null ? '–' : pos.now_serving;
      CB.$('#queue-wait').textContent = pos.estimated_wait_minutes === null ? '–' : pos.estimated_wait_minutes;
      CB.$('#queue-live').textContent = '实时更新 Live · ' + CB.fmtTime(CB.now().toISOString());
      checkInButton.hidden = !(pos.state === 'not_checked_in' && appt && appt.status === 'booked' &&
        appt.service_date === CB.today);
      if (pos.state === 'done' || pos.state === 'left') stop('');
    }
    function stop(text) {
      if (stream) stream.close();
      stream = null;
      if (text) CB.$('#queue-live').textContent = text;
    }
    function connect() {
      stream = new EventSource('/api/v1/appointments/' + appointmentId + '/queue/stream');
      stream.addEventListener('position', function (event) { render(JSON.parse(event.data)); });
      stream.onerror = function () {
        if (!stream) return;
        if (stream.readyState === EventSource.CLOSED) {
          // The stream was refused: ask once more to learn why (401 goes to the login page).
          stop('连接已断开 Disconnected');
          CB.get('/api/v1/appointments/' + appointmentId + '/queue').then(render).catch(CB.showError);
        } else {
          CB.$('#queue-live').textContent = '重新连接中… Reconnecting…';
        }
      };
    }

    checkInButton.addEventListener('click', function () { checkIn(appointmentId, checkInButton).catch(CB.showError); });
    CB.get('/api/v1/appointments/' + appointmentId).then(function (a) {
      appt = a;
      CB.fill(CB.$('#appointment-info'), [
        h('div', { class: 'row spread' }, h('span', { class: 'title' }, a.practitioner_name + ' · ' + a.department_name),
          CB.badge('status', a.status)),
        h('div', { class: 'muted' }, [a.hospital_name, when(a), '就诊人 ' + a.patient_name].join(' · '))
      ]);
      connect();
    }).catch(CB.showError);
    window.addEventListener('pagehide', function () { stop(''); });
  }

  // --- /patient/notifications ------------------------------------------------------------------------
  function notificationsPage() {
    var list = CB.$('#notification-list');
    var markAll = CB.$('#mark-all');
    var unread = [];

    function load() {
      return CB.get('/api/v1/notifications?limit=100').then(function (rows) {
        unread = rows.filter(function (n) { return !n.read_at; }).map(function (n) { return n.id; });
        markAll.hidden = !unread.length;
        CB.fill(list, rows.length ? rows.map(function (n) {
          return h('li', { class: 'list-item' + (n.read_at ? '' : ' unread'), dataset: { kind: n.kind } },
            h('div', { class: 'row spread' }, h('span', { class: 'title' }, n.title),
              h('small', {}, CB.fmtDateTime(n.created_at))),
            h('div', {}, n.body),
            n.data && n.data.appointment_id ? h('a', { class: 'meta', href: '/patient/appointments' }, '查看预约 View') : null);
        }) : h('li', { class: 'empty' }, '暂无消息 No messages'));
      }).catch(CB.showError);
    }
    markAll.addEventListener('click', function () {
      CB.busy(markAll, CB.post('/api/v1/notifications/read', { ids: unread.slice(0, 200) })).then(load).catch(CB.showError);
    });
    load();
  }

  var pages = { 'patient-appointments': appointmentsPage, 'patient-queue': queuePage,
    'patient-notifications': notificationsPage };
  if (pages[CB.page]) pages[CB.page]();
})();
