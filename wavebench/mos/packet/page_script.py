"""The offline test page's JavaScript and CSS (written for wavebench; no third-party code).

Kept as Python strings so that they ship inside the package without package-data settings.
``SCRIPT`` expects ``SHA256_K`` and ``SHA256_H`` (filled in by :mod:`wavebench.mos.packet.page`).
"""

STYLE = """
body{font-family:system-ui,sans-serif;max-width:52rem;margin:1.5rem auto;padding:0 1rem;
 line-height:1.45;color:#222}
button{font-size:1rem;padding:.45rem 1rem;margin:.3rem .3rem .3rem 0;cursor:pointer}
button:disabled{opacity:.45;cursor:default}
.scale label{display:inline-block;margin:.3rem .8rem .3rem 0;padding:.3rem .5rem;border:1px solid #bbb;
 border-radius:4px}
.scale input:disabled+span{color:#999}
progress{width:100%;height:.8rem}
.mushra{display:flex;gap:1rem;align-items:flex-end;flex-wrap:wrap}
.mushra .col{display:flex;flex-direction:column;align-items:center}
.mushra input[type=range]{writing-mode:vertical-lr;direction:rtl;height:14rem}
.mushra input.untouched::-webkit-slider-thumb{visibility:hidden}
.mushra input.untouched::-moz-range-thumb{visibility:hidden}
.playing{outline:3px solid #2a7}
.note{color:#555;font-size:.9rem}
.code{font-family:monospace;font-size:1.4rem}
"""

SCRIPT = r"""
(function () {
'use strict';
var CFG = JSON.parse(document.getElementById('wb-config').textContent);
var app = document.getElementById('app');
var K = SHA256_K, H0 = SHA256_H;
var state = null, storeKey = null, audios = [], shownAt = 0;

function rotr(x, n) { return (x >>> n) | (x << (32 - n)); }
// SHA-256 of the UTF-8 bytes of a string (file:// pages cannot rely on crypto.subtle).
function sha256hex(text) {
  var bytes = new TextEncoder().encode(text), n = bytes.length;
  var blocks = Math.ceil((n + 9) / 64), w = new Array(blocks * 16).fill(0), i, t;
  for (i = 0; i < n; i++) { w[i >> 2] |= bytes[i] << (24 - (i % 4) * 8); }
  w[n >> 2] |= 0x80 << (24 - (n % 4) * 8);
  w[blocks * 16 - 1] = (n * 8) >>> 0;
  w[blocks * 16 - 2] = Math.floor(n * 8 / 4294967296);
  var h = H0.slice(), W = new Array(64);
  for (var b = 0; b < blocks; b++) {
    for (t = 0; t < 16; t++) { W[t] = w[b * 16 + t] | 0; }
    for (t = 16; t < 64; t++) {
      var s0 = rotr(W[t - 15], 7) ^ rotr(W[t - 15], 18) ^ (W[t - 15] >>> 3);
      var s1 = rotr(W[t - 2], 17) ^ rotr(W[t - 2], 19) ^ (W[t - 2] >>> 10);
      W[t] = (W[t - 16] + s0 + W[t - 7] + s1) | 0;
    }
    var a = h[0], c1 = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (t = 0; t < 64; t++) {
      var S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25), ch = (e & f) ^ (~e & g);
      var t1 = (hh + S1 + ch + K[t] + W[t]) | 0;
      var S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22), maj = (a & c1) ^ (a & c) ^ (c1 & c);
      var t2 = (S0 + maj) | 0;
      hh = g; g = f; f = e; e = (d + t1) | 0; d = c; c = c1; c1 = a; a = (t1 + t2) | 0;
    }
    var add = [a, c1, c, d, e, f, g, hh];
    for (t = 0; t < 8; t++) { h[t] = (h[t] + add[t]) | 0; }
  }
  return h.map(function (x) { return ('00000000' + (x >>> 0).toString(16)).slice(-8); }).join('');
}

function nowIso() { return new Date().toISOString(); }
function el(tag, attrs, kids) {
  var node = document.createElement(tag);
  Object.keys(attrs || {}).forEach(function (k) {
    if (k === 'text') { node.textContent = attrs[k]; } else { node.setAttribute(k, attrs[k]); }
  });
  (kids || []).forEach(function (kid) { node.appendChild(kid); });
  return node;
}
function button(id, label, onClick, disabled) {
  var b = el('button', {id: id, type: 'button', text: label});
  b.disabled = !!disabled;
  b.addEventListener('click', onClick);
  return b;
}
function save() {
  try { localStorage.setItem(storeKey, JSON.stringify(state)); } catch (err) { /* private mode */ }
}
function trials() { return CFG.lists[state.list_id]; }
function safe(s) { return String(s).replace(/[^A-Za-z0-9_.-]/g, '_'); }

function start() {
  var q = new URLSearchParams(location.search);
  var list = q.get('list'), rater = q.get('rater'), pid = q.get('PROLIFIC_PID');
  if (pid && !rater) { rater = pid; }
  if (pid && !list) {
    list = CFG.list_ids[parseInt(sha256hex(pid).slice(0, 8), 16) % CFG.list_ids.length];
  }
  if (!list || !CFG.lists[list] || !rater) { return picker(list, rater); }
  begin(list, rater);
}

function picker(list, rater) {
  var sel = el('select', {id: 'list-select'});
  CFG.list_ids.forEach(function (id) {
    var o = el('option', {value: id, text: id}); if (id === list) { o.selected = true; }
    sel.appendChild(o);
  });
  var who = el('input', {id: 'rater-input', type: 'text', placeholder: 'rater id'});
  if (rater) { who.value = rater; }
  show([el('h1', {text: 'Listening test'}), el('p', {text: 'Choose the list and enter your id.'}),
        sel, who, button('start', 'Start', function () {
          if (who.value.trim()) { begin(sel.value, who.value.trim()); }
        })]);
}

function begin(list, rater) {
  storeKey = 'wavebench:' + CFG.packet_id + ':' + list + ':' + rater;
  var saved = null;
  try { saved = JSON.parse(localStorage.getItem(storeKey) || 'null'); } catch (err) { saved = null; }
  state = saved || {list_id: list, rater_id: rater, step: 'consent', trial_index: 0,
    session_id: list + '-' + rater + '-' + Date.now().toString(36), started_at: nowIso(),
    responses: [], questionnaire: {}, audio_context_rate: null, rating_started: null,
    break_done: false, result: null};
  render();
}

function show(nodes) {
  stopAll();
  app.textContent = '';
  nodes.forEach(function (n) { app.appendChild(n); });
  shownAt = performance.now();
}
function go(step) { state.step = step; save(); render(); }

function render() {
  if (state.step === 'consent') { return consent(); }
  if (state.step === 'instructions') { return instructions(); }
  if (state.step === 'questionnaire') { return questionnaire(); }
  if (state.step === 'done') { return done(); }
  if (state.trial_index >= trials().length) { return go('questionnaire'); }
  var minutes = state.rating_started ? (Date.now() - state.rating_started) / 60000 : 0;
  if (!state.break_done && minutes >= CFG.break_after_min) { return pause(false); }
  if (minutes >= CFG.max_min && !state.over_time) { return pause(true); }
  trial(trials()[state.trial_index]);
}

function consent() {
  show([el('h1', {text: 'Listening test'}), el('p', {text: CFG.consent}),
        button('consent-agree', 'I agree', function () {
          try {  // created on a user gesture (autoplay policy); only its rate is logged
            var Ctx = window.AudioContext || window.webkitAudioContext;
            var ctx = new Ctx(); state.audio_context_rate = Math.round(ctx.sampleRate); ctx.close();
          } catch (err) { state.audio_context_rate = null; }
          go('instructions');
        })]);
}

function instructions() {
  var nodes = [el('h1', {text: 'Instructions'})];
  CFG.instructions.forEach(function (p) { nodes.push(el('p', {text: p})); });
  nodes.push(el('p', {text: CFG.question}));
  nodes.push(el('ul', {}, scaleValues().map(function (v) {
    return el('li', {text: v + ' = ' + CFG.scale.labels[String(v)]});
  })));
  nodes.push(button('instructions-next', 'Start', function () {
    state.rating_started = Date.now(); go('trial');
  }));
  show(nodes);
}

function pause(hard) {
  var text = hard ? 'You have reached the time limit for one session. Your answers are saved ' +
    'in this browser: close the page and reopen it later to continue.' :
    'Please take a short break. Continue when you are ready.';
  show([el('h1', {text: hard ? 'Time limit' : 'Break'}), el('p', {text: text}),
        button('break-continue', 'Continue', function () {
          if (hard) { state.over_time = true; } else { state.break_done = true; }
          go('trial');
        })]);
}

function scaleValues() {
  var out = [];
  for (var v = CFG.scale.max; v >= CFG.scale.min; v -= CFG.scale.step) { out.push(v); }
  return out;
}

function player(id, label, anon, onEnded) {
  var audio = new Audio(CFG.audio[anon]);
  audio.preload = 'auto';
  var rec = {audio: audio, plays: 0, ended: false, listen: 0, since: null};
  audio.addEventListener('playing', function () { rec.since = performance.now(); });
  function stopClock() {
    if (rec.since !== null) { rec.listen += performance.now() - rec.since; rec.since = null; }
  }
  audio.addEventListener('pause', stopClock);
  audio.addEventListener('ended', function () { stopClock(); rec.ended = true; onEnded(rec); });
  audio.addEventListener('error', function () {
    app.appendChild(el('p', {'class': 'note', text: 'This audio file could not be played.'}));
  });
  rec.button = button(id, label, function () {
    stopAll(); rec.plays += 1; audio.currentTime = 0; audio.play();
  });
  audios.push(rec);
  return rec;
}
function stopAll() { audios.forEach(function (r) { r.audio.pause(); }); audios = []; }

function progress() {
  return el('progress', {value: String(state.trial_index), max: String(trials().length)});
}

function record(t, fields) {
  var base = {trial_index: state.trial_index, trial_id: t.trial_id, kind: t.kind, page_id: '',
    stimulus_id: t.stimuli[0], stimulus_b_id: '', presented_first: '', score: null, choice: '',
    n_plays: 0, played_to_end: false, listen_ms: 0,
    response_ms: Math.round(performance.now() - shownAt), answered_at: nowIso(), comment: ''};
  Object.keys(fields).forEach(function (k) { base[k] = fields[k]; });
  return base;
}
function finishTrial(rows) {
  rows.forEach(function (r) { state.responses.push(r); });
  state.trial_index += 1;
  save();
  render();
}

function trial(t) {
  if (CFG.method === 'mushra' && (t.kind === 'rating' || t.kind === 'training')) {
    return mushraPage(t);
  }
  var next = button('next', 'Next', function () {
    var chosen = app.querySelector('input[name=score]:checked');
    var fields = {n_plays: rec.plays, played_to_end: rec.ended, listen_ms: Math.round(rec.listen)};
    if (CFG.choice_questions[t.kind]) { fields.choice = chosen.value; }
    else if (t.kind !== 'calibration') { fields.score = parseInt(chosen.value, 10); }
    finishTrial([record(t, fields)]);
  }, true);
  var inputs = [];
  var rec = player('play', 'Play', t.stimuli[0], function () {
    inputs.forEach(function (i) { i.disabled = false; });
    if (t.kind === 'calibration') { next.disabled = false; }
  });
  var title = {calibration: 'Volume setting', training: 'Practice', trap: 'Listening check',
               headphone: 'Headphone check'};
  var nodes = [progress(), el('h2', {text: title[t.kind] || 'Rate this sample'})];
  if (t.kind === 'calibration') {
    nodes.push(el('p', {text: CFG.calibration_text}));
  } else {
    var choice = CFG.choice_questions[t.kind];
    var values = choice ? choice.choices : scaleValues();
    nodes.push(el('p', {text: choice ? choice.question : CFG.question}));
    var scale = el('div', {'class': 'scale'});
    values.forEach(function (v) {
      var input = el('input', {type: 'radio', name: 'score', value: String(v)});
      input.disabled = true;
      input.addEventListener('change', function () { next.disabled = false; });
      inputs.push(input);
      var label = choice ? String(v) : v + ' ' + CFG.scale.labels[String(v)];
      scale.appendChild(el('label', {}, [input, el('span', {text: ' ' + label})]));
    });
    nodes.push(scale);
  }
  nodes.push(el('p', {}, [rec.button]));
  nodes.push(el('p', {'class': 'note', text: 'Play the sample to the end before answering.'}));
  nodes.push(next);
  show(nodes);
}

function mushraPage(t) {
  var sliders = [], recs = [], current = -1;
  var next = button('next', 'Next', function () {
    finishTrial(t.stimuli.map(function (anon, i) {
      return record(t, {page_id: t.trial_id, stimulus_id: anon,
        score: parseInt(sliders[i].value, 10), n_plays: recs[i].plays,
        played_to_end: recs[i].ended, listen_ms: Math.round(recs[i].listen)});
    }));
  }, true);
  function check() {
    next.disabled = !recs.every(function (r) { return r.ended; }) ||
      sliders.some(function (s) { return s.classList.contains('untouched'); });
  }
  var ref = player('play-ref', 'Reference', t.reference, function () {});
  ref.button.addEventListener('click', function () { current = -1; enable(); });
  function enable() {  // only the condition now playing can be moved (WAET #146)
    sliders.forEach(function (s, i) { s.disabled = i !== current; });
    recs.forEach(function (r, i) { r.button.classList.toggle('playing', i === current); });
  }
  var cols = t.stimuli.map(function (anon, i) {
    var rec = player('play-' + i, String.fromCharCode(65 + i), anon, check);
    rec.button.classList.add('play-cond');
    rec.button.addEventListener('click', function () { current = i; enable(); });
    recs.push(rec);
    var s = el('input', {type: 'range', min: '0', max: '100', step: '1', value: '50',
      'class': 'untouched', id: 'slider-' + i});
    s.disabled = true;
    s.addEventListener('input', function () { s.classList.remove('untouched'); check(); });
    sliders.push(s);
    return el('div', {'class': 'col'}, [s, rec.button]);
  });
  show([progress(), el('h2', {text: t.kind === 'training' ? 'Practice' : 'Rate each sample'}),
        el('p', {text: CFG.question}), el('p', {}, [ref.button]),
        el('div', {'class': 'mushra'}, cols),
        el('p', {'class': 'note', text: 'Play every sample to the end and move its slider.'}),
        next]);
}

function questionnaire() {
  function select(id, options) {
    var s = el('select', {id: id});
    options.forEach(function (o) { s.appendChild(el('option', {value: o[0], text: o[1]})); });
    return s;
  }
  var device = select('q-device', [['', '(choose)'], ['headphones', 'Headphones'],
    ['in-ear', 'In-ear'], ['speakers', 'Speakers']]);
  var native = select('q-native', [['', '(choose)'], ['yes', 'Yes'], ['no', 'No']]);
  var age = select('q-age', [['', '(prefer not to say)'], ['18-29', '18-29'], ['30-49', '30-49'],
    ['50+', '50+']]);
  var hearing = select('q-hearing', [['', '(prefer not to say)'], ['normal', 'Normal'],
    ['impaired', 'Impaired']]);
  var comment = el('textarea', {id: 'q-comment', rows: '3', cols: '50'});
  show([el('h1', {text: 'A few questions'}),
        el('p', {text: 'What did you listen with?'}), device,
        el('p', {text: 'Is the language of the samples your first language?'}), native,
        el('p', {text: 'Age band (optional)'}), age,
        el('p', {text: 'Hearing (optional)'}), hearing,
        el('p', {text: 'Comments (optional)'}), comment,
        el('p', {}, [button('questionnaire-next', 'Finish', function () {
          state.questionnaire = {device: device.value, native_language: native.value,
            age_band: age.value, hearing_self_report: hearing.value, comment: comment.value};
          state.result = buildResult();
          go('done');
        })])]);
}

function buildResult() {
  var payload = {packet_id: CFG.packet_id, list_id: state.list_id, rater_id: state.rater_id,
    session_id: state.session_id, method: CFG.method, started_at: state.started_at,
    finished_at: nowIso(), completed: state.trial_index >= trials().length,
    user_agent: navigator.userAgent, audio_context_rate: state.audio_context_rate,
    questionnaire: state.questionnaire, responses: state.responses};
  var checksum = sha256hex(JSON.stringify(payload));
  return {format: 'wavebench-mos-results', version: 1, payload: payload, checksum: checksum,
          completion_code: checksum.slice(0, 8)};
}

function done() {
  var r = state.result;
  var name = 'wavebench_' + safe(CFG.packet_id) + '_' + safe(state.list_id) + '_' +
    safe(state.rater_id) + '.json';
  show([el('h1', {text: 'Thank you'}),
        el('p', {text: 'Your completion code:'}), el('p', {'class': 'code', id: 'code',
          text: r.completion_code}),
        el('p', {text: 'Download your results and send the file to the experimenter.'}),
        button('download', 'Download results', function () {
          var blob = new Blob([JSON.stringify(r)], {type: 'application/json'});
          var a = el('a', {href: URL.createObjectURL(blob), download: name});
          document.body.appendChild(a); a.click(); a.remove();
        })]);
}

document.addEventListener('keydown', function (ev) {
  var input = app.querySelector('input[name=score][value="' + ev.key + '"]');
  if (input && !input.disabled) { input.checked = true; input.dispatchEvent(new Event('change')); }
});
window.wavebench = {sha256hex: sha256hex};
start();
})();
"""

#: The served page's addition (``wavebench mos serve``), run inside ``SCRIPT`` just before
#: ``start()``: it replaces ``start`` (the server assigns the list and the session), posts
#: each trial's answers as they are given (retried until acknowledged; a reload sends what
#: was not), and on finishing waits for the server's completion code or redirect. The offline
#: page never contains it. Expects ``<script type="application/json" id="wb-served">``.
SERVED_SCRIPT = r"""
// --- served mode (wavebench mos serve): every answer is posted as it is given ---
var SRV = JSON.parse(document.getElementById('wb-served').textContent);
var auth = null, outbox = [], sending = false, retryMs = 500;
var offlineFinishTrial = finishTrial, offlineBuild = buildResult, offlineDone = done;

function api(path, body) {
  var headers = {'Content-Type': 'application/json'};
  if (auth) { headers.Authorization = 'Bearer ' + auth.token; }
  return fetch(SRV.api + path, {method: 'POST', headers: headers, body: JSON.stringify(body),
                                credentials: 'omit', cache: 'no-store'}).then(function (r) {
    return r.json().catch(function () { return {}; }).then(function (data) {
      return {status: r.status, data: data};
    });
  });
}
function message(title, text) {
  show([el('h1', {text: title}), el('p', {id: 'served-message', text: text})]);
}
function later(fn) { setTimeout(fn, retryMs); retryMs = Math.min(retryMs * 2, 8000); }

start = function () {
  var q = new URLSearchParams(location.search);
  var pid = q.get('PROLIFIC_PID') || '', rater = pid || q.get('rater') || '';
  if (!rater) {
    return message('Listening test', 'This link has no rater id. Open the study from the ' +
                   'link you were given.');
  }
  var authKey = 'wavebench-served:' + CFG.packet_id + ':' + rater;
  try { auth = JSON.parse(localStorage.getItem(authKey) || 'null'); } catch (err) { auth = null; }
  if (!auth || !auth.token) {  // this browser's secret for the session, kept before it is sent
    var bytes = new Uint8Array(32), hex = '';
    crypto.getRandomValues(bytes);
    bytes.forEach(function (b) { hex += ('0' + b.toString(16)).slice(-2); });
    auth = {token: hex};
    try { localStorage.setItem(authKey, JSON.stringify(auth)); } catch (err) { /* private */ }
  }
  var ident = {rater_id: rater, study_id: q.get('STUDY_ID') || '',
               prolific_session_id: q.get('SESSION_ID') || '',
               platform: pid ? 'prolific' : SRV.platform};
  message('Listening test', 'Connecting...');
  api('session', ident).then(function (res) {
    if (res.status !== 200) {
      return message('Cannot start', res.data.error || ('The server answered ' + res.status));
    }
    resume(res.data, rater, ident.platform);
  }, function () {
    message('Cannot reach the server', 'Check your connection, then reload this page.');
  });
};

function resume(data, rater, platform) {
  storeKey = 'wavebench:' + CFG.packet_id + ':' + data.list_id + ':' + rater;
  var saved = null;
  try { saved = JSON.parse(localStorage.getItem(storeKey) || 'null'); } catch (err) { saved = null; }
  if (!saved || saved.session_id !== data.session_id) {
    saved = {list_id: data.list_id, rater_id: rater, step: 'consent', trial_index: 0,
      session_id: data.session_id, started_at: nowIso(), responses: [], questionnaire: {},
      audio_context_rate: null, rating_started: null, break_done: false, result: null};
  }
  state = saved;
  state.platform = platform;
  // The server's answers are the record; answers it has not acknowledged go out again.
  var stored = {};
  data.responses.forEach(function (r) { stored[r.trial_id] = true; });
  var pending = state.responses.filter(function (r) { return !stored[r.trial_id]; });
  state.responses = data.responses.concat(pending).sort(function (a, b) {
    return a.trial_index - b.trial_index;
  });
  var byTrial = {};
  pending.forEach(function (r) {
    if (!byTrial[r.trial_id]) { byTrial[r.trial_id] = []; outbox.push(byTrial[r.trial_id]); }
    byTrial[r.trial_id].push(r);
  });
  var next = state.responses.length ?
    state.responses[state.responses.length - 1].trial_index + 1 : 0;
  if (next > state.trial_index) { state.trial_index = next; }
  if (state.responses.length && (state.step === 'consent' || state.step === 'instructions')) {
    state.step = 'trial';
    state.rating_started = state.rating_started || Date.now();
  }
  if (data.completed) { state.step = 'done'; state.served_code = data.completion_code; }
  save();
  render();
  flush();
}

function flush() {
  if (sending || !outbox.length) { return; }
  sending = true;
  api('answers', {session_id: state.session_id, answers: outbox[0]}).then(function (res) {
    sending = false;
    if (res.status === 200 || res.status === 409 || res.status === 422) {
      // 409: stored already, the first answer stands; 422: refused for good (kept locally)
      outbox.shift(); retryMs = 500; flush();
    } else { later(flush); }
  }, function () { sending = false; later(flush); });
}

finishTrial = function (rows) {
  outbox.push(rows);
  offlineFinishTrial(rows);
  flush();
};

buildResult = function () {
  var r = offlineBuild();
  r.payload.platform = state.platform || '';
  r.checksum = sha256hex(JSON.stringify(r.payload));
  r.completion_code = r.checksum.slice(0, 8);
  return r;
};

function finishServed() {
  if (outbox.length || sending) { flush(); return setTimeout(finishServed, 200); }
  var p = state.result.payload;
  var meta = {started_at: p.started_at, finished_at: p.finished_at, completed: p.completed,
              user_agent: p.user_agent, audio_context_rate: p.audio_context_rate,
              questionnaire: p.questionnaire, platform: p.platform};
  api('finish', {session_id: state.session_id, meta: meta, checksum: state.result.checksum})
    .then(function (res) {
      if (res.status === 200) {
        state.served_code = res.data.completion_code;
        save();
        if (res.data.redirect) { location.href = res.data.redirect; return; }
        return done();
      }
      if (res.status === 409 && res.data.missing) {  // send those trials again
        res.data.missing.forEach(function (tid) {
          outbox.push(state.responses.filter(function (r) { return r.trial_id === tid; }));
        });
      }
      later(finishServed);
    }, function () { later(finishServed); });
}

done = function () {
  if (state.served_code === undefined || state.served_code === null) {
    message('Saving', 'Saving your answers. Please keep this page open.');
    return finishServed();
  }
  if (!state.result) { return message('Thank you', 'Your completion code: ' + state.served_code); }
  offlineDone();
  document.getElementById('code').textContent = state.served_code;
};
"""
