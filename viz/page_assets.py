"""The style sheet and script of the HTML page (``viz.render(t, "graph.html")``), inlined into
every page so that it works offline, from a file, with no network access."""

CSS = """
body { font: 13px Helvetica, Arial, sans-serif; margin: 0; color: #222; }
header { padding: 8px 12px; background: #f4f4f8; border-bottom: 1px solid #ccd;
         display: flex; flex-wrap: wrap; gap: 14px; align-items: center; }
header h1 { font-size: 15px; margin: 0 10px 0 0; }
header button { font: inherit; padding: 2px 9px; }
header button.on { background: #4a5fb0; color: white; border-color: #4a5fb0; }
#tg-search { width: 180px; }
#tg-step-info { padding: 6px 12px; background: #fffbe8; border-bottom: 1px solid #e6dcaa;
                min-height: 1.3em; white-space: pre-wrap; font-family: Menlo, monospace;
                font-size: 12px; }
.tg-view { padding: 8px; overflow: auto; }
.tg-view[hidden] { display: none; }
#tg-tip { position: fixed; pointer-events: none; background: white; border: 1px solid #889;
          box-shadow: 0 2px 8px rgba(0,0,0,.25); padding: 6px 8px; font-size: 12px;
          max-width: 360px; z-index: 10; display: none; }
#tg-tip table { border-collapse: collapse; }
#tg-tip td { padding: 0 6px 0 0; vertical-align: top; }
#tg-tip .h { font-weight: bold; font-size: 13px; margin-bottom: 3px; }
g.node.tg-found > path, g.node.tg-found > polygon, g.node.tg-found > ellipse,
g.node.tg-found a > path, g.node.tg-found a > polygon {
    stroke: #ff00aa; stroke-width: 5px; }
g.node.tg-step > path, g.node.tg-step > polygon, g.node.tg-step > ellipse,
g.node.tg-step a > path, g.node.tg-step a > polygon {
    stroke: #000; stroke-width: 5px; stroke-dasharray: 6 3; }
g.node.tg-done { opacity: .55; }
g.node.tg-summed > path, g.node.tg-summed > polygon, g.node.tg-summed > ellipse {
    stroke: #e07b00; stroke-width: 4px; }
"""

JS = r"""
(function () {
  const data = JSON.parse(document.getElementById('tg-data').textContent);
  const tip = document.getElementById('tg-tip');
  const info = document.getElementById('tg-step-info');
  let depth = data.start;
  let step = -1;
  let timer = null;

  function view(d) { return document.getElementById('tg-view-' + d); }
  function boxes(d) { return Array.from(view(d).querySelectorAll('g.node')); }
  function box(d, id) { return view(d).querySelector('g.node[data-tg="' + id + '"]'); }

  // Graphviz's own <title> and link titles would show as browser tooltips: keep the box id
  // as data-tg and drop them.
  for (const d of data.depths) {
    for (const g of boxes(d)) {
      const t = g.querySelector('title');
      g.setAttribute('data-tg', t ? t.textContent : '');
    }
    view(d).querySelectorAll('title').forEach(e => e.remove());
    view(d).querySelectorAll('a').forEach(a => {
      a.removeAttributeNS('http://www.w3.org/1999/xlink', 'title'); a.removeAttribute('title'); });
  }

  function num(x) {
    if (x === null || x === undefined) return '–';
    if (x === 0) return '0';
    const a = Math.abs(x);
    return (a >= 1e-3 && a < 1e4) ? x.toPrecision(4).replace(/\.?0+$/, '') : x.toExponential(2);
  }
  function hist(h) {
    if (!h) return '';
    const m = Math.max(...h, 1), w = 6;
    let s = '<svg width="' + (h.length * w) + '" height="30">';
    h.forEach((c, i) => {
      const ht = Math.round(28 * c / m);
      s += '<rect x="' + (i * w) + '" y="' + (30 - ht) + '" width="' + (w - 1) + '" height="' +
           ht + '" fill="#6a8fbf"/>';
    });
    return s + '</svg>';
  }
  function stats(s, what) {
    if (!s) return '';
    const parts = [];
    if (s.norm !== undefined) parts.push('norm ' + num(s.norm));
    if (s.mean !== undefined) parts.push('mean ' + num(s.mean));
    parts.push('min ' + num(s.min), 'max ' + num(s.max));
    let r = '<tr><td>' + what + '</td><td>' + parts.join(' · ') + '</td></tr>';
    if (s.hist) r += '<tr><td></td><td>' + hist(s.hist) + '</td></tr>';
    return r;
  }
  function esc(t) { return String(t).replace(/[&<>"]/g, c => ({'&': '&amp;', '<': '&lt;',
                                                              '>': '&gt;', '"': '&quot;'}[c])); }
  function tipHtml(b) {
    let s = '<div class="h">' + esc(b.title) + '</div><table>';
    s += '<tr><td>kind</td><td>' + esc(b.kind) + '</td></tr>';
    if (b.shape) s += '<tr><td>shape</td><td>' + esc(b.shape) + '</td></tr>';
    if (b.dtype) s += '<tr><td>dtype</td><td>' + esc(b.dtype) + '</td></tr>';
    if (b.device) s += '<tr><td>device</td><td>' + esc(b.device) + '</td></tr>';
    if (b.calls) s += '<tr><td>calls</td><td>' + b.calls + ' (folded)</td></tr>';
    if (b.params && b.params.length) s += '<tr><td>params</td><td>' +
        esc(b.params.join(', ')) + '</td></tr>';
    s += b.value ? stats(b.value, 'value') :
        '<tr><td>value</td><td>not kept (the engine keeps only what backward needs)</td></tr>';
    s += b.grad ? stats(b.grad, 'gradient') : '<tr><td>gradient</td><td>not known</td></tr>';
    if (b.per_call) s += '<tr><td>per call</td><td>' + esc(b.per_call) + '</td></tr>';
    return s + '</table>';
  }

  function showDepth(d) {
    depth = d;
    for (const e of data.depths) view(e).hidden = (e !== d);
    document.querySelectorAll('[data-depth]').forEach(
        b => b.classList.toggle('on', b.getAttribute('data-depth') === String(d)));
    search();
    paintStep();
  }

  function search() {
    const q = document.getElementById('tg-search').value.trim().toLowerCase();
    const boxInfo = data.boxes[depth];
    let n = 0;
    for (const g of boxes(depth)) {
      const b = boxInfo[g.getAttribute('data-tg')];
      const hit = !!(q && b && (b.params || []).some(p => p.toLowerCase().includes(q)));
      g.classList.toggle('tg-found', hit);
      if (hit) n++;
    }
    document.getElementById('tg-found').textContent = q ? n + ' found' : '';
  }

  function paintStep() {
    for (const g of boxes(depth)) g.classList.remove('tg-step', 'tg-done', 'tg-summed');
    if (step < 0) { info.textContent = data.steps.length ?
        'backward: ' + data.steps.length + ' VJPs recorded; press next' :
        'backward: no recorded backward (call viz.watch_grads(loss) before loss.backward())';
      return; }
    for (let k = 0; k < step; k++) {
      const g = box(depth, data.steps[k].box[depth]);
      if (g) g.classList.add('tg-done');
    }
    const s = data.steps[step];
    const g = box(depth, s.box[depth]);
    if (g) { g.classList.remove('tg-done'); g.classList.add('tg-step');
             if (s.summed > 1) g.classList.add('tg-summed'); }
    let t = 'step ' + (step + 1) + '/' + data.steps.length + ': ' + s.name +
            ' received ∇ ' + s.received;
    if (s.summed > 1) t += '  (sum of ' + s.summed + ' paths)';
    for (const o of s.sent) t += '\n   → ' + o;
    info.textContent = t;
  }
  function go(k) { step = Math.max(-1, Math.min(data.steps.length - 1, k)); paintStep(); }

  document.querySelectorAll('[data-depth]').forEach(b => b.addEventListener('click',
      () => showDepth(b.getAttribute('data-depth'))));
  document.getElementById('tg-search').addEventListener('input', search);
  document.getElementById('tg-prev').addEventListener('click', () => go(step - 1));
  document.getElementById('tg-next').addEventListener('click', () => go(step + 1));
  document.getElementById('tg-play').addEventListener('click', () => {
    if (timer) { clearInterval(timer); timer = null; return; }
    timer = setInterval(() => { if (step >= data.steps.length - 1) { clearInterval(timer);
                                  timer = null; } else go(step + 1); }, 600);
  });
  document.addEventListener('mouseover', e => {
    const g = e.target.closest && e.target.closest('g.node');
    // a shared input drawn at each use (n5_u12) shows the facts of its box (n5)
    const b = g && data.boxes[depth][g.getAttribute('data-tg').replace(/_u\d+$/, '')];
    if (!b) { tip.style.display = 'none'; return; }
    tip.innerHTML = tipHtml(b);
    tip.style.display = 'block';
  });
  document.addEventListener('mousemove', e => {
    tip.style.left = Math.min(e.clientX + 14, window.innerWidth - 370) + 'px';
    tip.style.top = (e.clientY + 14) + 'px';
  });
  window.tapegrad = { go: go, showDepth: showDepth, get step() { return step; },
                      get depth() { return depth; } };
  showDepth(depth);
})();
"""
