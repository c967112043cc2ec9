'use strict';
// The Train tab: datasets (and what is wrong with dataset_info.json), the tokenized preview, the form built from
// /api/train/fields, the YAML and command, runs (start, abort, list) and the live view over server-sent events.
(() => {
  const $ = (id) => document.getElementById(id);
  let fields = [];
  let previewPage = 0;
  let watched = null; // { id, source: EventSource, points: [] }
  const FINAL = ['finished', 'failed', 'aborted'];

  function fieldInput(field) {
    const id = `train-field-${field.key}`;
    const label = Board.el('label');
    label.dataset.field = field.key;
    const caption = Board.el('span');
    caption.dataset.i18n = `train.field.${field.key}`;
    let input;
    if (field.kind === 'boolean') {
      label.className = 'inline';
      input = Board.el('input');
      input.type = 'checkbox';
      input.checked = field.default === true;
    } else if (field.kind === 'choice') {
      input = Board.el('select');
      Board.setOptions(input, field.choices);
      input.value = field.default;
    } else {
      input = Board.el('input');
      input.size = field.kind === 'text' ? 16 : 9;
      input.value = String(field.default);
    }
    input.id = id;
    label.append(caption, input);
    return label;
  }

  function fieldValues() {
    const values = {};
    for (const field of fields) {
      const input = $(`train-field-${field.key}`);
      if (input.closest('label').hidden) continue;
      values[field.key] = field.kind === 'boolean' ? input.checked : input.value;
    }
    return values;
  }

  function form() {
    const s = Board.selection();
    return {
      model: s.model,
      finetuning_type: s.finetuning_type,
      adapters: s.adapters,
      quantization_bit: s.quantization_bit,
      quantization_type: s.quantization_type,
      template: s.template,
      stage: $('train-stage').value,
      dataset_dir: $('train-dataset-dir').value,
      datasets: Array.from($('train-datasets').selectedOptions).map((o) => o.value),
      output_dir: $('train-output-dir').value.trim(),
      fields: fieldValues(),
    };
  }

  // Fields of other methods and stages are hidden (and not sent); an empty group is hidden too.
  function showApplicableFields() {
    const stage = $('train-stage').value;
    const method = Board.selection().finetuning_type;
    for (const field of fields) {
      const applies = (!field.stages || field.stages.includes(stage)) && (!field.methods || field.methods.includes(method));
      $(`train-field-${field.key}`).closest('label').hidden = !applies;
    }
    for (const group of ['basic', 'extra', 'method', 'preference']) {
      const box = $(`train-group-${group}`);
      box.hidden = !Array.from(box.querySelectorAll('label')).some((l) => !l.hidden);
    }
  }

  async function loadDatasets() {
    const error = $('train-dataset-error');
    const note = $('train-dataset-note');
    Board.showError(error, null);
    note.hidden = true;
    $('train-datasets').replaceChildren();
    const dir = $('train-dataset-dir').value;
    if (!dir) { Board.showError(error, Board.t('train.no_dataset_dir')); return; }
    try {
      const reply = await Board.api('GET', `/api/datasets?dir=${encodeURIComponent(dir)}&stage=${encodeURIComponent($('train-stage').value)}`);
      const usable = reply.datasets.filter((d) => d.usable);
      Board.setOptions($('train-datasets'), usable.map((d) => d.name));
      const unusable = reply.datasets.length - usable.length;
      note.textContent = Board.t('train.datasets_found', { file: reply.file, usable: usable.length, other: unusable });
      note.hidden = false;
      if (usable.length === 0) Board.showError(error, Board.t('train.no_usable_dataset', { file: reply.file, stage: $('train-stage').value }));
    } catch (e) {
      Board.showError(error, e);
    }
  }

  async function showPreview() {
    const dataset = $('train-datasets').selectedOptions[0];
    const box = $('train-preview-records');
    box.replaceChildren();
    $('train-preview').hidden = false;
    Board.showError($('train-preview-error'), null);
    if (!dataset) { Board.showError($('train-preview-error'), Board.t('train.choose_dataset')); return; }
    const s = Board.selection();
    const values = fieldValues();
    try {
      const reply = await Board.api('POST', '/api/train/preview', {
        model: s.model, template: s.template, dataset_dir: $('train-dataset-dir').value, dataset: dataset.value,
        stage: $('train-stage').value, cutoff_len: values.cutoff_len, train_on_prompt: values.train_on_prompt,
        mask_history: values.mask_history, page: previewPage, page_size: 5,
      });
      const first = reply.page * reply.page_size;
      $('train-preview-position').textContent = Board.t('train.preview_position', {
        first: Math.min(first + 1, reply.total), last: Math.min(first + reply.records.length, reply.total), total: reply.total, template: reply.template,
      });
      $('train-preview-prev').disabled = reply.page === 0;
      $('train-preview-next').disabled = first + reply.records.length >= reply.total;
      for (const record of reply.records) {
        const item = Board.el('div', 'record');
        item.append(Board.el('h4', null, `#${record.index + 1} · ${record.location}`));
        if (record.problem) item.append(Board.el('p', 'error', record.problem));
        for (const example of record.examples) {
          const tokens = Board.el('div', 'tokens');
          for (const token of example) tokens.append(Board.el('span', token.trained ? 'trained' : 'prompt', token.text));
          item.append(tokens);
        }
        box.append(item);
      }
    } catch (e) {
      Board.showError($('train-preview-error'), e);
    }
  }

  async function run(action) {
    Board.showError($('train-error'), null);
    $('train-message').hidden = true;
    try { await action(); } catch (e) { Board.showError($('train-error'), e); }
  }

  function message(text) {
    $('train-message').textContent = text;
    $('train-message').hidden = false;
  }

  async function previewCommand() {
    const reply = await Board.api('POST', '/api/train/command', form());
    $('train-command').textContent = `${reply.command}\n\n# ${reply.output_dir}/training_args.yaml\n${reply.yaml}`;
    $('train-command').hidden = false;
    if (!$('train-config-path').value) $('train-config-path').value = `${reply.output_dir}.yaml`;
  }

  async function saveArguments() {
    const reply = await Board.api('POST', '/api/train/save', { path: $('train-config-path').value.trim(), form: form() });
    message(Board.t('train.saved', { path: reply.path }));
  }

  async function loadArguments() {
    const reply = await Board.api('POST', '/api/train/load', { path: $('train-config-path').value.trim() });
    const values = reply.values;
    for (const field of fields) {
      if (!(field.key in values)) continue;
      const input = $(`train-field-${field.key}`);
      if (field.kind === 'boolean') input.checked = values[field.key] === 'true';
      else input.value = values[field.key];
    }
    if (values.stage) { $('train-stage').value = values.stage; showApplicableFields(); }
    message(Board.t('train.loaded', { count: Object.keys(values).length }));
  }

  async function start() {
    const reply = await Board.api('POST', '/api/runs', form());
    $('train-output-dir').value = '';
    await refreshRuns();
    watch(reply.id);
  }

  async function abort() {
    if (!watched) return;
    await Board.api('POST', '/api/runs/abort', { run: watched.id });
  }

  async function refreshRuns() {
    const reply = await Board.api('GET', '/api/runs');
    const body = $('train-runs');
    body.replaceChildren(...reply.runs.map((r) => {
      const row = Board.el('tr');
      row.dataset.run = r.id;
      row.append(Board.el('td', null, r.id), Board.el('td', `state-${r.state}`, Board.t(`train.state.${r.state}`)),
        Board.el('td', null, r.started_at ? new Date(r.started_at).toLocaleString() : ''));
      const open = Board.el('button', null, Board.t('train.watch'));
      open.addEventListener('click', () => watch(r.id));
      const cell = Board.el('td');
      cell.append(open);
      row.append(cell);
      return row;
    }));
    return reply.runs;
  }

  function duration(text) { return text || '–'; }

  function drawChart() {
    const svg = $('train-chart');
    const ns = 'http://www.w3.org/2000/svg';
    svg.replaceChildren();
    const series = ['loss', 'eval_loss', 'accuracy'];
    const points = watched.points;
    const all = points.flatMap((p) => series.filter((k) => typeof p[k] === 'number').map((k) => p[k]));
    if (all.length === 0) return;
    const total = Math.max(...points.map((p) => p.total_steps || p.current_steps), 1);
    let low = Math.min(...all), high = Math.max(...all);
    if (high === low) { high += 1; low -= 1; }
    const x = (step) => 40 + (step / total) * 750;
    const y = (v) => 220 - ((v - low) / (high - low)) * 200;
    for (const key of series) {
      const mine = points.filter((p) => typeof p[key] === 'number');
      if (mine.length === 0) continue;
      const line = document.createElementNS(ns, 'polyline');
      line.setAttribute('class', key);
      line.setAttribute('points', mine.map((p) => `${x(p.current_steps).toFixed(1)},${y(p[key]).toFixed(1)}`).join(' '));
      svg.append(line);
      for (const p of mine) {
        const dot = document.createElementNS(ns, 'circle');
        dot.setAttribute('class', `point ${key}`);
        dot.setAttribute('cx', x(p.current_steps).toFixed(1));
        dot.setAttribute('cy', y(p[key]).toFixed(1));
        dot.setAttribute('r', '2.5');
        svg.append(dot);
      }
    }
    for (const [v, at] of [[high, 24], [low, 224]]) {
      const label = document.createElementNS(ns, 'text');
      label.setAttribute('x', '2');
      label.setAttribute('y', String(at));
      label.textContent = v.toPrecision(4);
      svg.append(label);
    }
    const legend = document.createElementNS(ns, 'text');
    legend.setAttribute('x', '600');
    legend.setAttribute('y', '14');
    legend.textContent = series.filter((k) => points.some((p) => typeof p[k] === 'number')).map((k) => Board.t(`train.series.${k}`)).join(' · ');
    svg.append(legend);
  }

  function onLog(line) {
    const p = JSON.parse(line);
    if (typeof p.current_steps !== 'number') return;
    watched.points.push(p);
    $('train-progress').textContent = `${p.current_steps} / ${p.total_steps} (${p.percentage}%)`;
    $('train-time').textContent = `${duration(p.elapsed_time)} < ${duration(p.remaining_time)}`;
    if (typeof p.throughput === 'number') $('train-throughput').textContent = `${p.throughput.toFixed(1)} tokens/s`;
    drawChart();
  }

  function onState(run) {
    watched.state = run;
    $('train-state').textContent = Board.t(`train.state.${run.state}`);
    $('train-state').className = `state-${run.state}`;
    $('train-abort').disabled = FINAL.includes(run.state) || run.source !== 'board';
    const failed = run.state === 'failed' || run.state === 'aborted';
    $('train-failure').hidden = !failed;
    if (failed) {
      const tail = $('train-output').textContent.split('\n').filter((l) => l).slice(-8).join('\n');
      $('train-failure').textContent = `${run.error || Board.t(`train.state.${run.state}`)}\n\n${tail}`;
    }
    $('train-success').hidden = run.state !== 'finished';
    if (run.state === 'finished') {
      $('train-adapter').textContent = run.id;
      $('train-loss-png').href = `/api/runs/file?run=${encodeURIComponent(run.id)}&name=training_loss.png`;
    }
    const row = document.querySelector(`#train-runs tr[data-run="${CSS.escape(run.id)}"] td:nth-child(2)`);
    if (row) { row.textContent = Board.t(`train.state.${run.state}`); row.className = `state-${run.state}`; }
  }

  // Attaches the live view to a run: everything it logged so far, then each new line as it is written.
  function watch(id) {
    if (watched) watched.source.close();
    const source = new EventSource(`/api/runs/events?run=${encodeURIComponent(id)}`);
    watched = { id, source, points: [], state: null };
    localStorage.setItem('sharptune.train.watched', id);
    $('train-live').hidden = false;
    $('train-live-title').textContent = id;
    for (const el of ['train-progress', 'train-time', 'train-throughput', 'train-memory']) $(el).textContent = '–';
    $('train-output').textContent = '';
    $('train-chart').replaceChildren();
    source.addEventListener('log', (e) => onLog(e.data));
    source.addEventListener('reset', () => { watched.points = []; drawChart(); });
    source.addEventListener('output', (e) => {
      const out = $('train-output');
      out.textContent += JSON.parse(e.data) + '\n';
      out.scrollTop = out.scrollHeight;
    });
    source.addEventListener('memory', (e) => { $('train-memory').textContent = `${(JSON.parse(e.data).peak_bytes / 1048576).toFixed(0)} MiB`; });
    source.addEventListener('state', (e) => onState(JSON.parse(e.data)));
    source.addEventListener('end', () => { source.close(); refreshRuns(); });
  }

  function useResult(tab) {
    if (!watched) return;
    const adapters = $('adapters');
    if (!Array.from(adapters.options).some((o) => o.value === watched.id)) {
      const option = Board.el('option', null, watched.id);
      option.value = watched.id;
      adapters.append(option);
    }
    for (const option of adapters.options) option.selected = option.value === watched.id;
    adapters.dispatchEvent(new Event('change'));
    Board.show(tab);
  }

  Board.registerTab('train', {
    async init() {
      const reply = await Board.api('GET', '/api/train/fields');
      fields = reply.fields;
      Board.setOptions($('train-stage'), reply.stages);
      $('train-stage').value = 'sft';
      for (const field of fields) $(`train-group-${field.group}`).append(fieldInput(field));
      Board.applyLabels($('tab-train'));
      Board.setOptions($('train-dataset-dir'), (await Board.api('GET', '/api/dataset-dirs')).dirs);
      showApplicableFields();
      await loadDatasets();
      $('train-stage').addEventListener('change', () => { showApplicableFields(); loadDatasets(); });
      $('train-dataset-dir').addEventListener('change', loadDatasets);
      Board.onSelectionChange(showApplicableFields);
      $('train-preview-open').addEventListener('click', () => { previewPage = 0; showPreview(); });
      $('train-preview-prev').addEventListener('click', () => { previewPage = Math.max(0, previewPage - 1); showPreview(); });
      $('train-preview-next').addEventListener('click', () => { previewPage += 1; showPreview(); });
      $('train-preview-close').addEventListener('click', () => { $('train-preview').hidden = true; });
      $('train-command-button').addEventListener('click', () => run(previewCommand));
      $('train-save').addEventListener('click', () => run(saveArguments));
      $('train-load').addEventListener('click', () => run(loadArguments));
      $('train-start').addEventListener('click', () => run(start));
      $('train-abort').addEventListener('click', () => run(abort));
      $('train-to-chat').addEventListener('click', () => useResult('chat'));
      $('train-to-compare').addEventListener('click', () => useResult('compare'));
      $('train-to-export').addEventListener('click', () => useResult('export'));
      // Re-attach: the run this browser watched last, else the newest one still going.
      const runs = await refreshRuns();
      const remembered = localStorage.getItem('sharptune.train.watched');
      const live = runs.find((r) => r.state === 'running' || r.state === 'queued');
      const again = runs.find((r) => r.id === remembered) || live;
      if (again) watch(again.id);
    },
    languageChanged() {
      if (watched && watched.state) { onState(watched.state); drawChart(); }
    },
  });
})();
