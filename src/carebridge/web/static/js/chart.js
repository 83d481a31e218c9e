/* A small SVG line chart, our own code (no CDN, no library): CBChart.line(container, series, options).
   series: [{name, values: [number|null per label]}]; options: {labels: ['YYYY-MM-DD', ...], percent: bool}.
   Gaps (null) break the line; every point has a tooltip; a legend and a table fallback for screen readers. */
(function () {
  'use strict';
  var NS = 'http://www.w3.org/2000/svg';
  var COLORS = ['#0f766e', '#b54708', '#6941c6', '#b42318'];
  var W = 720, H = 260, PAD = { l: 56, r: 16, t: 12, b: 36 };

  function el(tag, attrs, text) {
    var node = document.createElementNS(NS, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function niceMax(v) {
    if (!(v > 0)) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * p >= v) return steps[i] * p;
    return 10 * p;
  }
  function fmt(v, percent) {
    if (v === null || v === undefined) return '—';
    if (percent) return (v * 100).toFixed(1) + '%';
    return Math.abs(v) >= 1000 ? Math.round(v).toLocaleString('zh-CN') : String(Math.round(v * 100) / 100);
  }

  function line(container, series, options) {
    var labels = options.labels;
    var percent = !!options.percent;
    var max = 0;
    series.forEach(function (s) { s.values.forEach(function (v) { if (v !== null && v > max) max = v; }); });
    max = niceMax(max);
    var iw = W - PAD.l - PAD.r, ih = H - PAD.t - PAD.b;
    var x = function (i) { return PAD.l + (labels.length > 1 ? i * iw / (labels.length - 1) : iw / 2); };
    var y = function (v) { return PAD.t + ih - (v / max) * ih; };
    var svg = el('svg', { viewBox: '0 0 ' + W + ' ' + H, class: 'cb-chart', 'aria-hidden': 'true' });
    for (var t = 0; t <= 4; t++) {
      var v = max * t / 4, yy = y(v);
      svg.appendChild(el('line', { x1: PAD.l, x2: W - PAD.r, y1: yy, y2: yy, class: 'grid' }));
      svg.appendChild(el('text', { x: PAD.l - 6, y: yy + 4, 'text-anchor': 'end', class: 'tick' }, fmt(v, percent)));
    }
    var every = Math.max(1, Math.ceil(labels.length / 8));
    labels.forEach(function (label, i) {
      var last = i === labels.length - 1;
      if (!last && (i % every || labels.length - 1 - i < every / 2)) return; // regular ticks, none crowding the last
      svg.appendChild(el('text', { x: x(i), y: H - 12, 'text-anchor': 'middle', class: 'tick' }, label.slice(5)));
    });
    series.forEach(function (s, si) {
      var color = COLORS[si % COLORS.length];
      var d = '', pen = false;
      s.values.forEach(function (val, i) {
        if (val === null || val === undefined) { pen = false; return; }
        d += (pen ? 'L' : 'M') + x(i).toFixed(1) + ' ' + y(val).toFixed(1) + ' ';
        pen = true;
      });
      if (d) svg.appendChild(el('path', { d: d, fill: 'none', stroke: color, 'stroke-width': 2, class: 'series' }));
      s.values.forEach(function (val, i) {
        if (val === null || val === undefined) return;
        var dot = el('circle', { cx: x(i), cy: y(val), r: 3, fill: color, class: 'point' });
        dot.appendChild(el('title', {}, s.name + ' ' + labels[i] + ': ' + fmt(val, percent)));
        svg.appendChild(dot);
      });
    });
    var legend = document.createElement('div');
    legend.className = 'cb-legend';
    series.forEach(function (s, si) {
      var item = document.createElement('span');
      var swatch = document.createElement('i');
      swatch.style.background = COLORS[si % COLORS.length];
      item.appendChild(swatch);
      item.appendChild(document.createTextNode(s.name));
      legend.appendChild(item);
    });
    var table = document.createElement('table');
    table.className = 'sr-only';
    var head = table.insertRow();
    ['日期 Day'].concat(series.map(function (s) { return s.name; })).forEach(function (t) {
      var c = document.createElement('th'); c.textContent = t; head.appendChild(c);
    });
    labels.forEach(function (label, i) {
      var row = table.insertRow();
      row.insertCell().textContent = label;
      series.forEach(function (s) { row.insertCell().textContent = fmt(s.values[i], percent); });
    });
    container.replaceChildren(svg, legend, table);
  }

  window.CBChart = { line: line };
})();
