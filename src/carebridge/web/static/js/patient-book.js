/* Patient booking: hospital -> department -> doctor's session by day -> slot -> patient -> book; reschedule. */
(function () {
  'use strict';
  var CB = window.CB;
  var h = CB.h;
  var DAYS_SHOWN = 14;

  function empty(text) { return h('li', { class: 'empty' }, text); }
  function doctorTitle(s) { return [s.practitioner_name, CB.label('title', s.practitioner_title)].join(' '); }
  function sessionTime(s, tz) { return CB.fmtTime(s.starts_at, tz) + '–' + CB.fmtTime(s.ends_at, tz); }
  function maskId(id) { return id && id.length > 8 ? id.slice(0, 3) + '*'.repeat(id.length - 7) + id.slice(-4) : id; }
  function freeBadge(free) {
    return free > 0 ? h('span', { class: 'badge ok' }, '余 ' + free + ' 号 · ' + free + ' left')
      : h('span', { class: 'badge danger' }, '约满 Full');
  }
  function summary(dl, rows) {
    CB.fill(dl, rows.filter(function (r) { return r[1]; }).map(function (r) {
      return [h('dt', {}, r[0]), h('dd', { dataset: { field: r[2] || '' } }, r[1])];
    }));
  }

  /* Day tabs for [today, today + DAYS_SHOWN): each shows how many sessions with free places it has. */
  function dayTabs(container, byDay, selected, onPick) {
    var days = [];
    for (var i = 0; i < DAYS_SHOWN; i++) days.push(CB.addDays(CB.today, i));
    CB.fill(container, days.map(function (day) {
      var sessions = byDay[day] || [];
      var open = sessions.filter(function (s) { return s.free > 0; }).length;
      var note = sessions.length ? (open ? open + ' 个有号' : '约满') : '无号';
      return h('button', {
        type: 'button', class: 'day' + (sessions.length ? '' : ' none'), 'aria-pressed': String(day === selected),
        dataset: { day: day }, onclick: function () { onPick(day); }
      }, h('span', { class: 'wd' }, i18nDay(day)), h('span', { class: 'dt' }, day.slice(5).replace('-', '/')),
      h('span', { class: 'n' }, note));
    }));
  }
  function i18nDay(day) {
    if (day === CB.today) return '今天';
    if (day === CB.addDays(CB.today, 1)) return '明天';
    return CB.weekday(day);
  }
  function groupByDay(schedules) {
    var byDay = {};
    schedules.forEach(function (s) { (byDay[s.service_date] = byDay[s.service_date] || []).push(s); });
    return byDay;
  }
  function firstDayWith(byDay) {
    for (var i = 0; i < DAYS_SHOWN; i++) {
      var day = CB.addDays(CB.today, i);
      if ((byDay[day] || []).some(function (s) { return s.free > 0; })) return day;
    }
    return CB.today;
  }

  /* A session's slots as buttons; a slot that has started or has no free platform place is disabled. */
  function slotButtons(container, schedule, opts) {
    var now = CB.now();
    var buttons = schedule.slots.map(function (slot) {
      var current = slot.id === opts.currentSlotId;
      var started = new Date(slot.starts_at) <= now;
      var note = current ? '当前 Current' : started ? '已过 Past' : slot.free > 0 ? '余 ' + slot.free : '约满 Full';
      return h('button', {
        type: 'button', class: 'slot', disabled: current || started || slot.free <= 0,
        'aria-pressed': String(opts.selected === slot.id), dataset: { slotId: slot.id, time: slot.local_time },
        onclick: function () { opts.onPick(slot, schedule); }
      }, h('span', { class: 'time' }, slot.local_time), h('span', { class: 'free' }, note));
    });
    CB.fill(container, buttons.length ? buttons : h('p', { class: 'muted' }, '没有可约时段 No slots'));
  }

  // --- /patient: find a hospital ---------------------------------------------------------------------
  function hospitalsPage() {
    var state = { q: '', internet: false, offset: 0, limit: 20 };
    var list = CB.$('#hospital-list');
    var more = CB.$('#more-hospitals');

    function load(reset) {
      if (reset) state.offset = 0;
      var query = new URLSearchParams({ limit: state.limit, offset: state.offset });
      if (state.q) query.set('q', state.q);
      if (state.internet) query.set('internet', 'true');
      return CB.get('/api/v1/hospitals?' + query).then(function (page) {
        if (reset) list.replaceChildren();
        page.items.forEach(function (hsp) {
          list.appendChild(h('li', {}, h('a', { class: 'list-item', href: '/patient/hospitals/' + hsp.id,
            dataset: { hospitalId: hsp.id } },
          h('div', { class: 'row spread' }, h('span', { class: 'title' }, hsp.name),
            hsp.is_internet_hospital ? h('span', { class: 'badge brand' }, '互联网医院') : null),
          h('div', { class: 'meta' }, [CB.label('level', hsp.level) + '医院', hsp.address].filter(Boolean).join(' · ')))));
        });
        if (!list.children.length) list.appendChild(empty('没有找到医院 No hospitals found'));
        state.offset += page.items.length;
        more.hidden = state.offset >= page.total;
      }).catch(CB.showError);
    }
    CB.$('#hospital-search').addEventListener('submit', function (event) {
      event.preventDefault();
      state.q = CB.$('#hospital-q').value.trim();
      load(true);
    });
    CB.$('#internet-only').addEventListener('change', function (event) {
      state.internet = event.target.checked;
      load(true);
    });
    more.addEventListener('click', function () { CB.busy(more, load(false)); });
    load(true);
  }

  // --- /patient/hospitals/{id}: departments ----------------------------------------------------------
  function departmentsPage() {
    var hospitalId = CB.data.hospitalId;
    CB.get('/api/v1/hospitals/' + hospitalId).then(function (hsp) {
      document.title = hsp.name + ' · CareBridge';
      CB.$('#hospital-name').textContent = hsp.name;
      CB.$('#crumb-hospital').textContent = hsp.short_name || hsp.name;
      CB.$('#hospital-meta').textContent = [CB.label('level', hsp.level) + '医院', hsp.address, hsp.phone]
        .filter(Boolean).join(' · ');
    }).catch(CB.showError);

    function load(q) {
      var query = q ? '?q=' + encodeURIComponent(q) : '';
      return CB.get('/api/v1/hospitals/' + hospitalId + '/departments' + query).then(function (rows) {
        var active = rows.filter(function (d) { return d.active; });
        CB.fill(CB.$('#department-list'), active.length ? active.map(function (d) {
          return h('li', {}, h('a', { class: 'list-item', href: '/patient/departments/' + d.id, dataset: { departmentId: d.id } },
            h('div', { class: 'title' }, d.name), d.description ? h('div', { class: 'meta' }, d.description) : null));
        }) : empty('没有科室 No departments'));
      }).catch(CB.showError);
    }
    CB.$('#department-search').addEventListener('submit', function (event) {
      event.preventDefault();
      load(CB.$('#department-q').value.trim());
    });
    load('');
  }

  // --- /patient/departments/{id}: doctors' sessions by day -------------------------------------------
  function schedulesPage() {
    var departmentId = CB.data.departmentId;
    var byDay = {};
    var selected = null;
    var tz = CB.zone;

    CB.get('/api/v1/departments/' + departmentId).then(function (dep) {
      CB.$('#department-name').textContent = dep.name;
      CB.$('#crumb-department').textContent = dep.name;
      var crumb = CB.$('#crumb-hospital');
      crumb.href = '/patient/hospitals/' + dep.hospital_id;
      return CB.get('/api/v1/hospitals/' + dep.hospital_id).then(function (hsp) {
        crumb.textContent = hsp.short_name || hsp.name;
        tz = hsp.timezone;
      });
    }).catch(CB.showError);
    CB.get('/api/v1/departments/' + departmentId + '/booking-rules/effective').then(function (rules) {
      CB.$('#rules-info').textContent = '可预约 ' + rules.window_days + ' 天内号源，每天 ' + rules.opens_at.slice(0, 5) +
        ' 放号；就诊前 ' + Math.round(rules.cancel_deadline_minutes / 60 * 10) / 10 + ' 小时内不可取消。' +
        ' Book up to ' + rules.window_days + ' days ahead; cancel until ' + rules.cancel_deadline_minutes +
        ' minutes before.';
    }).catch(function () { /* the rules line is a hint only */ });

    function renderDay(day) {
      selected = day;
      dayTabs(CB.$('#days'), byDay, selected, renderDay);
      var sessions = (byDay[day] || []).slice().sort(function (a, b) { return a.starts_at < b.starts_at ? -1 : 1; });
      CB.fill(CB.$('#schedule-list'), sessions.length ? sessions.map(function (s) {
        return h('li', {}, h('a', { class: 'list-item', href: '/patient/schedules/' + s.id, dataset: { scheduleId: s.id } },
          h('div', { class: 'row spread' }, h('span', { class: 'title' }, doctorTitle(s)), freeBadge(s.free)),
          h('div', { class: 'meta' }, [CB.label('session', s.session), sessionTime(s, tz), CB.money(s.fee_fen)].join(' · '))));
      }) : empty(CB.fmtDay(day) + ' 没有出诊 No sessions on this day'));
    }

    var query = new URLSearchParams({ department_id: departmentId, date_from: CB.today,
      date_to: CB.addDays(CB.today, DAYS_SHOWN - 1) });
    CB.get('/api/v1/schedules?' + query).then(function (rows) {
      byDay = groupByDay(rows);
      renderDay(firstDayWith(byDay));
    }).catch(CB.showError);
  }

  // --- /patient/schedules/{id}: slot, patient, book --------------------------------------------------
  function bookPage() {
    var scheduleId = CB.data.scheduleId;
    var state = { schedule: null, slot: null, patient: null, patients: [], key: null };
    var bookButton = CB.$('#book-button');

    function loadSchedule() {
      return CB.get('/api/v1/schedules/' + scheduleId).then(function (s) {
        state.schedule = s;
        CB.$('#doctor-name').textContent = doctorTitle(s);
        var crumb = CB.$('#crumb-department');
        crumb.textContent = s.department_name;
        crumb.href = '/patient/departments/' + s.department_id;
        CB.$('#schedule-meta').textContent = [s.department_name, CB.fmtDay(s.service_date), CB.label('session', s.session),
          sessionTime(s), '挂号费 ' + CB.money(s.fee_fen)].join(' · ');
        if (s.status !== 'open') CB.show('error', '该出诊已停诊 This session has been stopped', 'schedule_stopped');
        if (state.slot && !s.slots.some(function (x) { return x.id === state.slot.id && x.free > 0; })) state.slot = null;
        renderSlots();
      });
    }
    function renderSlots() {
      slotButtons(CB.$('#slots'), state.schedule, {
        selected: state.slot && state.slot.id,
        onPick: function (slot) { state.slot = slot; state.key = null; renderSlots(); renderConfirm(); }
      });
      renderConfirm();
    }

    function loadPatients(selectId) {
      return CB.get('/api/v1/patients').then(function (rows) {
        state.patients = rows;
        if (selectId) state.patient = rows.find(function (p) { return p.id === selectId; }) || null;
        else if (rows.length === 1) state.patient = rows[0];
        renderPatients();
      });
    }
    function renderPatients() {
      var none = !state.patients.length;
      CB.$('#patient-form').hidden = !none && CB.$('#patient-form').dataset.open !== 'true';
      CB.$('#add-patient-toggle').hidden = none;
      CB.fill(CB.$('#patients'), none ? h('p', { class: 'muted' }, '您还没有添加就诊人，请先添加实名信息。' +
        ' Add the patient\'s real-name details first.') : state.patients.map(function (p) {
        return h('label', { class: 'choice', dataset: { patientId: p.id } },
          h('input', { type: 'radio', name: 'patient', value: p.id, checked: state.patient && state.patient.id === p.id,
            onchange: function () { state.patient = p; state.key = null; renderConfirm(); } }),
          h('span', {}, h('b', {}, p.name), ' ', h('small', {}, [CB.label('relation', p.relation), maskId(p.id_number)]
            .filter(Boolean).join(' · '))));
      }));
      renderConfirm();
    }
    function renderConfirm() {
      var s = state.schedule;
      if (!s) return;
      summary(CB.$('#confirm-summary'), [
        ['医生 Doctor', doctorTitle(s)], ['科室 Dept.', s.department_name],
        ['时间 Time', state.slot ? CB.fmtDay(s.service_date) + ' ' + state.slot.local_time : '请选择时段 choose a time'],
        ['就诊人 Patient', state.patient ? state.patient.name : '请选择就诊人 choose a patient'],
        ['挂号费 Fee', CB.money(s.fee_fen)]
      ]);
      bookButton.disabled = !(state.slot && state.patient && s.status === 'open');
    }

    CB.$('#add-patient-toggle').addEventListener('click', function () {
      var form = CB.$('#patient-form');
      form.dataset.open = form.hidden ? 'true' : 'false';
      form.hidden = !form.hidden;
      if (!form.hidden) CB.$('#pf-name').focus();
    });
    CB.$('#patient-form').addEventListener('submit', function (event) {
      event.preventDefault();
      CB.hideMessage();
      var body = { name: CB.$('#pf-name').value.trim(), id_number: CB.$('#pf-id').value.trim().toUpperCase(),
        relation: CB.$('#pf-relation').value };
      var phone = CB.$('#pf-phone').value.trim();
      if (phone) body.phone = phone;
      CB.busy(CB.$('#save-patient'), CB.post('/api/v1/patients', body).then(function (p) {
        CB.$('#patient-form').reset();
        CB.$('#patient-form').dataset.open = 'false';
        CB.show('success', '已添加就诊人 ' + p.name + ' Patient added');
        return loadPatients(p.id);
      })).catch(CB.showError);
    });

    bookButton.addEventListener('click', function () {
      CB.hideMessage();
      // One key per choice: a retry after a lost answer replays the same booking instead of making a second.
      state.key = state.key || CB.newKey();
      var payload = { patient_id: state.patient.id, slot_id: state.slot.id, channel: 'platform' };
      CB.busy(bookButton, CB.post('/api/v1/appointments', payload, { headers: { 'Idempotency-Key': state.key } }))
        .then(function (appt) {
          CB.$('#booking').hidden = true;
          var done = CB.$('#booked');
          done.hidden = false;
          done.dataset.appointmentId = appt.id;
          summary(CB.$('#booked-summary'), [
            ['医院 Hospital', appt.hospital_name], ['医生 Doctor', appt.practitioner_name],
            ['时间 Time', CB.fmtDay(appt.service_date) + ' ' + CB.fmtTime(appt.starts_at) + '–' + CB.fmtTime(appt.ends_at)],
            ['就诊人 Patient', appt.patient_name], ['状态 Status', CB.label('status', appt.status)]
          ]);
          CB.show('success', '预约成功 Booked');
          done.scrollIntoView({ block: 'start' });
        })
        .catch(function (err) {
          CB.showError(err);
          if (err.status && err.status !== 0) {
            state.key = null;
            loadSchedule().catch(CB.showError); // places may have changed
          }
        });
    });

    loadSchedule().then(function () { return loadPatients(); }).catch(CB.showError);
  }

  // --- /patient/appointments/{id}/reschedule ----------------------------------------------------------
  function reschedulePage() {
    var appointmentId = CB.data.appointmentId;
    var state = { appt: null, byDay: {}, day: null, slot: null, schedule: null, full: {} };
    var button = CB.$('#reschedule-button');

    function renderConfirm() {
      summary(CB.$('#confirm-summary'), [
        ['原时间 From', state.appt ? CB.fmtDay(state.appt.service_date) + ' ' + CB.fmtTime(state.appt.starts_at) : ''],
        ['新时间 To', state.slot ? CB.fmtDay(state.schedule.service_date) + ' ' + state.slot.local_time :
          '请选择新时段 choose a new time']
      ]);
      button.disabled = !(state.slot && state.appt && state.appt.status === 'booked');
    }
    function renderDay(day) {
      state.day = day;
      dayTabs(CB.$('#days'), state.byDay, day, renderDay);
      var sessions = state.byDay[day] || [];
      var box = CB.$('#sessions');
      if (!sessions.length) {
        CB.fill(box, h('p', { class: 'empty' }, CB.fmtDay(day) + ' 没有出诊 No sessions on this day'));
        return;
      }
      CB.fill(box, sessions.map(function (s) {
        var grid = h('div', { class: 'slots' }, h('span', { class: 'muted' }, '加载中… Loading…'));
        state.full[s.id] = state.full[s.id] || CB.get('/api/v1/schedules/' + s.id);
        state.full[s.id].then(function (full) {
          slotButtons(grid, full, {
            selected: state.slot && state.slot.id, currentSlotId: state.appt.slot_id,
            onPick: function (slot, sched) { state.slot = slot; state.schedule = sched; renderDay(state.day); renderConfirm(); }
          });
        }).catch(function (err) { delete state.full[s.id]; CB.showError(err); });
        return h('div', { class: 'card', dataset: { scheduleId: s.id } },
          h('div', { class: 'card-head' }, h('h3', {}, CB.label('session', s.session) + ' ' + sessionTime(s)),
            h('span', { class: 'muted' }, s.department_name + ' · ' + CB.money(s.fee_fen))), grid);
      }));
    }

    CB.get('/api/v1/appointments/' + appointmentId).then(function (appt) {
      state.appt = appt;
      CB.fill(CB.$('#current-appointment'), [
        h('div', { class: 'title' }, appt.practitioner_name + ' · ' + appt.department_name),
        h('div', { class: 'muted' }, [appt.hospital_name, CB.fmtDay(appt.service_date) + ' ' + CB.fmtTime(appt.starts_at) +
          '–' + CB.fmtTime(appt.ends_at), '就诊人 ' + appt.patient_name].join(' · ')),
        CB.badge('status', appt.status)
      ]);
      if (appt.status !== 'booked') CB.show('error', '该预约不能改约 This appointment cannot be rescheduled');
      renderConfirm();
      var query = new URLSearchParams({ practitioner_id: appt.practitioner_id, hospital_id: appt.hospital_id,
        date_from: CB.today, date_to: CB.addDays(CB.today, DAYS_SHOWN - 1) });
      return CB.get('/api/v1/schedules?' + query).then(function (rows) {
        state.byDay = groupByDay(rows);
        renderDay(state.byDay[appt.service_date] ? appt.service_date : firstDayWith(state.byDay));
      });
    }).catch(CB.showError);

    button.addEventListener('click', function () {
      CB.hideMessage();
      CB.busy(button, CB.post('/api/v1/appointments/' + appointmentId + '/reschedule', { slot_id: state.slot.id }))
        .then(function () {
          CB.flashNext('success', '改约成功 Rescheduled');
          location.assign('/patient/appointments');
        })
        .catch(function (err) {
          CB.showError(err);
          state.slot = null;
          state.full = {}; // places may have changed
          renderDay(state.day);
          renderConfirm();
        });
    });
  }

  var pages = { 'patient-hospitals': hospitalsPage, 'patient-departments': departmentsPage,
    'patient-schedules': schedulesPage, 'patient-book': bookPage, 'patient-reschedule': reschedulePage };
  if (pages[CB.page]) pages[CB.page]();
})();
