/* The trace viewer: search every reported event by type, hospital, doctor, patient and time; show a
   consultation's or a prescription's whole trail in order. ``?event=<id>`` (evidence links) shows one. */
(function () {
  'use strict';
  var CB = window.CB, SV = window.SV, h = CB.h;
  var listBox = CB.$('#trace-list');
  var names = {};
  var UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

  function trailLink(kind, id) {
    return h('a', { href: '#', class: 'sv-trail-link', onclick: function (e) { e.preventDefault(); showTrail(kind, id); } }, id.slice(0, 8));
  }
  function render(title, events, highlight) {
    CB.$('#trace-title').textContent = title;
    if (!events.length) { CB.fill(listBox, h('p', { class: 'muted empty' }, '没有事件 No events')); return; }
    CB.fill(listBox, h('table', { class: 'sv-trace' },
      h('thead', {}, h('tr', {}, SV.th('时间', 'Time'), SV.th('事件', 'Event'), SV.th('医院', 'Hospital'),
        SV.th('对象', 'Subject'), SV.th('关联', 'Links'), SV.th('数据', 'Data'))),
      h('tbody', {}, events.map(function (e) {
        return h('tr', { dataset: { eventId: e.id, type: e.type }, class: e.id === highlight ? 'selected' : '' },
          h('td', {}, CB.fmtDateTime(e.occurred_at)),
          h('td', {}, h('b', {}, e.type), h('div', { class: 'muted small' }, e.actor || '')),
          h('td', {}, SV.hospitalName(names, e.hospital_id)),
          h('td', { class: 'small' }, e.subject_type + ' ' + e.subject_id.slice(0, 8)),
          h('td', { class: 'small' },
            e.consultation_id ? ['问诊 ', trailLink('consultation', e.consultation_id), ' '] : null,
            e.prescription_id ? ['处方 ', trailLink('prescription', e.prescription_id)] : null),
          h('td', {}, h('details', {}, h('summary', {}, '查看 View'), h('pre', { class: 'sv-json' }, JSON.stringify(e.data, null, 2)))));
      }))));
  }

  function localToIso(value) { return value ? new Date(value).toISOString() : ''; }
  function search() {
    var q = new URLSearchParams({ limit: '200' });
    var type = CB.$('#trace-type').value.trim();
    var practitioner = CB.$('#trace-practitioner').value.trim();
    var patient = CB.$('#trace-patient').value.trim();
    if (type) q.set('type', type);
    if (CB.$('#trace-hospital').value) q.set('hospital_id', CB.$('#trace-hospital').value);
    if (practitioner) q.set('practitioner_id', practitioner);
    if (patient) q.set('patient_id', patient);
    if (CB.$('#trace-since').value) q.set('since', localToIso(CB.$('#trace-since').value));
    if (CB.$('#trace-until').value) q.set('until', localToIso(CB.$('#trace-until').value));
    return CB.get(SV.BASE + '/events?' + q.toString()).then(function (events) { render('事件 Events (' + events.length + ')', events); });
  }
  function showTrail(kind, id) {
    if (!UUID.test(id)) { CB.show('error', 'ID 格式无效 Not a valid id'); return Promise.resolve(); }
    CB.$('#trail-kind').value = kind;
    CB.$('#trail-id').value = id;
    return CB.get(SV.BASE + '/trail/' + kind + '/' + id).then(function (events) {
      render((kind === 'consultation' ? '问诊全流程 Consultation trail ' : '处方全流程 Prescription trail ') + id.slice(0, 8), events);
    }).catch(SV.fail);
  }

  CB.$('#trace-form').addEventListener('submit', function (e) { e.preventDefault(); CB.busy(CB.$('#trace-search'), search()).catch(SV.fail); });
  CB.$('#trail-form').addEventListener('submit', function (e) {
    e.preventDefault();
    CB.busy(CB.$('#trail-show'), showTrail(CB.$('#trail-kind').value, CB.$('#trail-id').value.trim()));
  });

  SV.hospitals().then(function (n) {
    names = n;
    var select = CB.$('#trace-hospital');
    Object.keys(n).forEach(function (id) { select.appendChild(h('option', { value: id }, n[id].name)); });
    var params = new URLSearchParams(location.search);
    var eventId = params.get('event');
    if (params.get('consultation')) return showTrail('consultation', params.get('consultation'));
    if (params.get('prescription')) return showTrail('prescription', params.get('prescription'));
    if (eventId && UUID.test(eventId)) {
      // an evidence link: find the event, then show its trail when it has one
      return CB.get(SV.BASE + '/events/' + eventId).then(function (found) {
        if (found.consultation_id) {
          return CB.get(SV.BASE + '/trail/consultation/' + found.consultation_id).then(function (trail) {
            render('问诊全流程 Consultation trail ' + found.consultation_id.slice(0, 8), trail, eventId);
          });
        }
        render('事件 Event', [found], eventId);
      });
    }
    return search();
  }).catch(SV.fail);
})();
