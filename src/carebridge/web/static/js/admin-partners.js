/* Hospital admin: the approved partner apps, this hospital's grants to them, grant and revoke. */
(function () {
  'use strict';
  var CB = window.CB;
  var h = CB.h;
  var base = '/api/v1/hospitals/' + CB.data.hospitalId + '/partner-apps';
  var KIND = { patient_facing: '患者端 Patient-facing', backend: '后台 Backend' };

  function action(app, active) {
    var button = h('button', { type: 'button', class: 'btn small' + (active ? ' danger' : '') },
      active ? '撤销授权 Revoke' : '授权 Grant');
    button.addEventListener('click', function () {
      CB.hideMessage();
      if (active && !window.confirm('撤销 ' + app.name + ' 的授权？ Revoke ' + app.name + "'s access?")) return;
      var done = active ? CB.api('DELETE', base + '/' + app.id) : CB.put(base + '/' + app.id);
      CB.busy(button, done).then(function () {
        CB.show('success', active ? '已撤销 ' + app.name + ' Access revoked' : '已授权 ' + app.name + ' Access granted');
        return load();
      }).catch(CB.showError);
    });
    return button;
  }

  function load() {
    return Promise.all([CB.get('/api/v1/partner-apps?status=approved'), CB.get(base)]).then(function (got) {
      var apps = got[0];
      var grants = got[1];
      var names = {};
      apps.forEach(function (a) { names[a.id] = a.name; });
      var active = {};
      grants.forEach(function (g) { if (g.revoked_at === null) active[g.app_id] = g; });
      CB.fill(CB.$('#partner-table tbody'), apps.length ? apps.map(function (a) {
        var grant = active[a.id];
        return h('tr', { dataset: { appId: a.id } },
          h('td', {}, h('strong', {}, a.name), h('br'), h('small', { class: 'muted' }, a.organisation)),
          h('td', {}, KIND[a.kind] || a.kind),
          h('td', {}, h('small', {}, a.scopes.join(' '))),
          h('td', {}, h('code', {}, a.channel)),
          h('td', { class: 'access' }, grant ?
            h('span', { class: 'badge ok' }, '已授权 Granted ' + CB.fmtDateTime(grant.granted_at)) :
            h('span', { class: 'badge' }, '未授权 Not granted')),
          h('td', {}, action(a, !!grant)));
      }) : h('tr', {}, h('td', { colspan: 6, class: 'empty' }, '还没有审核通过的应用 No approved apps yet')));
      CB.fill(CB.$('#grant-history tbody'), grants.length ? grants.map(function (g) {
        return h('tr', {}, h('td', {}, names[g.app_id] || g.app_id + ' (已停用 no longer approved)'),
          h('td', {}, CB.fmtDateTime(g.granted_at)), h('td', {}, g.revoked_at ? CB.fmtDateTime(g.revoked_at) : '—'));
      }) : h('tr', {}, h('td', { colspan: 3, class: 'empty' }, '没有授权记录 No grants yet')));
    }).catch(CB.showError);
  }

  load();
})();
