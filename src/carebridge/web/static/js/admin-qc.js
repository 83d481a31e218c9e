/* Hospital admin: record quality control. Defects per record (hospital and per doctor), the scored records by
   status (open ones worst first), each open one resolved with a note. */
(function () {
  'use strict';
  var CB = window.CB;
  var h = CB.h;
  var hospitalId = CB.data.hospitalId;
  var base = '/api/v1/hospitals/' + hospitalId;
  var PAGE = 50;
  var statusSelect = CB.$('#qc-status');
  var doctorSelect = CB.$('#qc-practitioner');
  var listBox = CB.$('#qc-list');
  var moreButton = CB.$('#qc-more');
  var names = {}; // practitioner id -> name, or null when the directory does not say
  var lookups = {}; // practitioner id -> the pending directory read
  var shown = 0;
  var generation = 0; // a newer list load makes older answers stale

  var DEFECT = {
    missing_chief_complaint: '缺主诉',
    missing_present_illness: '缺现病史',
    missing_past_history: '缺既往史',
    missing_allergies: '未写过敏史',
    missing_diagnosis: '缺诊断',
    missing_advice: '缺医嘱建议',
    invalid_diagnosis_code: '诊断编码无效',
    unspecific_diagnosis_code: '诊断编码不具体',
    diagnosis_prescription_mismatch: '处方诊断与病历不符',
    allergy_drug_conflict: '用药与过敏史冲突',
    late_signature: '签名超时'
  };
  var STATUS = { open: '待处理 Open', resolved: '已处理 Resolved', clean: '无缺陷 Clean',
    superseded: '已替代 Superseded' };
  var STATUS_CLASS = { open: 'danger', resolved: 'ok', clean: 'ok', superseded: '' };
  var ERRORS = { qc_not_open: '该结果已不是待处理状态 This result is no longer open' };

  function fail(err) {
    if (err instanceof CB.ApiError && ERRORS[err.code]) {
      CB.show('error', ERRORS[err.code] + (err.message ? ' — ' + err.message : ''), err.code);
    } else {
      CB.showError(err);
    }
  }
  function th(zh, en, cls) { return h('th', { class: cls }, zh, ' ', h('small', {}, en)); }
  function nameOf(id) { return names[id] || String(id); }

  // --- practitioner names from the directory -----------------------------------------------------------------

  var directory = CB.get('/api/v1/practitioners?limit=200&hospital_id=' + encodeURIComponent(hospitalId))
    .then(function (page) { page.items.forEach(function (p) { names[p.id] = p.name; }); })
    .catch(function () { /* names are a nicety: ids are shown instead */ });

  /* Names for these ids: the hospital's list first, then one read each for doctors it does not list
     (no longer filed here, inactive). A failed read leaves the id. */
  function ensureNames(ids) {
    return directory.then(function () {
      return Promise.all(ids.filter(function (id) { return !(id in names); }).map(function (id) {
        if (!lookups[id]) {
          lookups[id] = CB.get('/api/v1/practitioners/' + id, { stay: true })
            .then(function (p) { names[id] = p.name; }).catch(function () { names[id] = null; });
        }
        return lookups[id];
      }));
    });
  }

  // --- metrics -------------------------------------------------------------------------------------------

  function stat(value, zh, en, cls) {
    return h('div', { class: cls }, h('b', {}, value), h('span', {}, zh + ' ' + en));
  }

  function doctorOptions(doctors) {
    var current = doctorSelect.value;
    CB.fill(doctorSelect, [h('option', { value: '' }, '全部医生 All doctors')].concat(doctors.map(function (d) {
      return h('option', { value: d.practitioner_id }, nameOf(d.practitioner_id));
    })));
    if (current && !doctors.some(function (d) { return d.practitioner_id === current; })) {
      doctorSelect.appendChild(h('option', { value: current }, nameOf(current)));
    }
    doctorSelect.value = current;
  }

  function loadMetrics() {
    return CB.get(base + '/record-qc/metrics').then(function (m) {
      return ensureNames(m.doctors.map(function (d) { return d.practitioner_id; })).then(function () { return m; });
    }).then(function (m) {
      doctorOptions(m.doctors);
      var selected = doctorSelect.value;
      var table = m.doctors.length ? h('div', { class: 'table-wrap' }, h('table', { id: 'qc-doctors' },
        h('thead', {}, h('tr', {}, th('医生', 'Doctor'), th('病历', 'Records', 'num'), th('缺陷', 'Defects', 'num'),
          th('缺陷/份', 'Defects per record', 'num'), th('平均分', 'Mean score', 'num'), th('待处理', 'Open', 'num'))),
        h('tbody', {}, m.doctors.map(function (d) {
          var pick = h('button', { type: 'button', class: 'link', title: '只看该医生 Show only this doctor',
            onclick: function () {
              doctorSelect.value = doctorSelect.value === d.practitioner_id ? '' : d.practitioner_id;
              reload();
            } }, nameOf(d.practitioner_id));
          return h('tr', { class: 'doctor-row' + (selected === d.practitioner_id ? ' selected' : ''),
            dataset: { practitionerId: d.practitioner_id } },
          h('td', { class: 'doctor' }, pick), h('td', { class: 'num records' }, d.records),
          h('td', { class: 'num defects' }, d.defects), h('td', { class: 'num defects-per-record' }, d.defects_per_record),
          h('td', { class: 'num mean-score' }, d.mean_score), h('td', { class: 'num open' }, d.open));
        })))) : h('p', { class: 'empty' }, '还没有已签名的病历 No signed records yet');
      CB.fill(CB.$('#qc-metrics'), [
        h('h2', {}, '质控指标 ', h('small', {}, 'Quality metrics')),
        h('div', { class: 'stats four qc-totals' },
          stat(m.records, '病历', 'Records', 'total-records'), stat(m.defects, '缺陷', 'Defects', 'total-defects'),
          stat(m.defects_per_record, '缺陷/份', 'Defects per record', 'total-defects-per-record'),
          stat(m.open, '待处理', 'Open', 'total-open')),
        h('h3', {}, '按医生 ', h('small', {}, 'By doctor')),
        table
      ]);
    });
  }

  // --- the list ------------------------------------------------------------------------------------------

  function detailText(obj) {
    var keys = Object.keys(obj || {});
    if (!keys.length) return null;
    return h('small', { class: 'details' }, ' · ' + keys.map(function (k) {
      var v = obj[k];
      return k + ': ' + (Array.isArray(v) ? v.join(', ') : v !== null && typeof v === 'object' ? JSON.stringify(v) : v);
    }).join('; '));
  }

  function defectItem(d) {
    return h('li', { class: 'defect', dataset: { code: d.code } },
      (d.rule ? '[' + d.rule + '] ' : '') + d.message + ' (' + d.weight + ')',
      DEFECT[d.code] ? h('span', { class: 'zh' }, ' — ' + DEFECT[d.code]) : null, ' ', h('code', {}, d.code),
      detailText(d.details));
  }

  function resolveForm(q) {
    var note = h('input', { class: 'resolve-note', maxlength: 500, minlength: 2, required: true,
      placeholder: '处理说明（至少 2 个字）How it was dealt with', 'aria-label': '处理说明 Resolution note' });
    var button = h('button', { type: 'submit', class: 'btn small resolve' }, '标记已处理 Resolve');
    return h('form', { class: 'row resolve-row', onsubmit: function (event) {
      event.preventDefault();
      CB.hideMessage();
      var text = note.value.trim();
      if (text.length < 2) {
        CB.show('error', '请填写处理说明（至少 2 个字）Write a note (at least 2 characters)');
        note.focus();
        return;
      }
      CB.busy(button, CB.post('/api/v1/record-qc/' + q.id + '/resolve', { note: text })).then(function () {
        CB.show('success', '已标记为已处理 Marked as resolved');
        return Promise.all([reload(), loadMetrics()]);
      }).catch(function (err) {
        fail(err);
        if (err instanceof CB.ApiError && err.code === 'qc_not_open') reload();
      });
    } }, note, button);
  }

  function qcItem(q) {
    var level = q.score < 60 ? 'low' : q.score < 90 ? 'mid' : 'high';
    return h('div', { class: 'card qc-item', dataset: { id: q.id, status: q.status } },
      h('div', { class: 'card-head' },
        h('h3', {}, h('span', { class: 'score ' + level }, q.score), h('small', {}, ' 分 score'), ' · ',
          h('span', { class: 'defect-count' }, q.defect_count), ' 项缺陷 defects'),
        h('span', { class: 'badge ' + (STATUS_CLASS[q.status] || ''), dataset: { status: q.status } },
          STATUS[q.status] || q.status)),
      h('p', { class: 'meta muted' }, '医生 Doctor: ', h('span', { class: 'doctor' }, nameOf(q.practitioner_id)),
        ' · 评分于 Checked ', h('span', { class: 'checked-at' }, CB.fmtDateTime(q.checked_at)),
        ' · 问诊 Consultation ', h('code', { class: 'consultation-id' }, q.consultation_id),
        ' · 病历 Record ', h('code', {}, String(q.record_id).slice(-8))),
      q.defects.length ? h('ul', { class: 'defects' }, q.defects.map(defectItem)) :
        h('p', { class: 'muted' }, '无缺陷 No defects'),
      q.resolution ? h('p', { class: 'resolution' }, h('b', {}, '处理说明 Resolution: '), q.resolution) : null,
      q.status === 'open' ? resolveForm(q) : null);
  }

  function load(append) {
    var mine = ++generation;
    var status = statusSelect.value || 'open';
    var query = new URLSearchParams({ status: status, limit: PAGE, offset: append ? shown : 0 });
    if (doctorSelect.value) query.set('practitioner_id', doctorSelect.value);
    return CB.get(base + '/record-qc?' + query).then(function (page) {
      return ensureNames(page.items.map(function (q) { return q.practitioner_id; })).then(function () { return page; });
    }).then(function (page) {
      if (mine !== generation) return;
      var cards = page.items.map(qcItem);
      if (append) cards.forEach(function (c) { listBox.appendChild(c); });
      else CB.fill(listBox, cards.length ? cards : h('p', { class: 'empty' }, status === 'open' ?
        '没有待处理的病历缺陷 No open record defects' : '没有“' + STATUS[status] + '”的结果 Nothing here'));
      shown = (append ? shown : 0) + page.items.length;
      CB.$('#qc-total').textContent = String(page.total);
      moreButton.hidden = shown >= page.total;
    });
  }
  function reload() {
    Array.prototype.forEach.call(document.querySelectorAll('tr.doctor-row'), function (tr) {
      tr.classList.toggle('selected', tr.dataset.practitionerId === doctorSelect.value);
    });
    return load(false).catch(fail);
  }

  statusSelect.addEventListener('change', reload);
  doctorSelect.addEventListener('change', reload);
  CB.$('#qc-filter').addEventListener('submit', function (event) { event.preventDefault(); });
  moreButton.addEventListener('click', function () { CB.busy(moreButton, load(true)).catch(fail); });
  loadMetrics().catch(fail);
  reload();
})();
