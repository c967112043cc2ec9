'use strict';
// The evaluate & predict tab: queues `sharptune train` runs with do_eval or do_predict (the Train tab's run queue),
// then shows a finished run's metrics (the runs under saves/ with results are offered) and browses its
// generated_predictions.jsonl a page at a time, each row scored.
(() => {
  const pageSize = 20;
  let pane;
  let run = null;
  let offset = 0;
  let total = 0;
  const $ = (id) => pane.querySelector('#' + id);
  const number = (value) => (typeof value === 'number' ? (Number.isInteger(value) ? String(value) : value.toFixed(4)) : String(value));

  async function act(work) {
    Board.showError($('evaluate-error'), null);
    try { await work(); } catch (error) { Board.showError($('evaluate-error'), error); }
  }

  function metricsTable(name, metrics) {
    const table = Board.el('table', 'runs metrics');
    table.append(Board.el('caption', null, name));
    for (const [key, value] of Object.entries(metrics)) {
      const tr = Board.el('tr');
      tr.append(Board.el('th', null, key), Board.el('td', null, number(value)));
      table.append(tr);
    }
    return table;
  }

  async function showResults() {
    const results = await Board.api('GET', `/api/evaluate/results?run=${encodeURIComponent(run)}`);
    const files = Object.entries(results.metrics);
    $('evaluate-metrics').replaceChildren(...(files.length
      ? files.map(([name, metrics]) => metricsTable(name, metrics))
      : [Board.el('p', 'note', Board.t('evaluate.no_results'))]));
    $('evaluate-browser').hidden = !('predict_results.json' in results.metrics);
    if (!$('evaluate-browser').hidden) await showPage(0);
  }

  async function showPage(start) {
    const page = await Board.api('GET', `/api/evaluate/predictions?run=${encodeURIComponent(run)}&offset=${start}&limit=${pageSize}`);
    offset = start;
    total = page.total;
    const head = Board.el('tr');
    for (const key of ['evaluate.line', 'evaluate.prompt', 'evaluate.reference', 'evaluate.prediction']) head.append(Board.el('th', null, Board.t(key)));
    for (const metric of ['BLEU-4', 'ROUGE-1', 'ROUGE-2', 'ROUGE-L']) head.append(Board.el('th', null, metric));
    const rows = page.rows.map((row) => {
      const tr = Board.el('tr');
      tr.append(Board.el('td', null, String(row.line)), Board.el('td', 'text', row.prompt), Board.el('td', 'text', row.reference), Board.el('td', 'text', row.prediction));
      for (const metric of ['bleu-4', 'rouge-1', 'rouge-2', 'rouge-l']) tr.append(Board.el('td', 'score', row[metric].toFixed(2)));
      return tr;
    });
    $('evaluate-rows').replaceChildren(head, ...rows);
    $('evaluate-page').textContent = Board.t('evaluate.page', { first: total ? offset + 1 : 0, last: offset + page.rows.length, total });
    $('evaluate-previous').disabled = offset === 0;
    $('evaluate-next').disabled = offset + pageSize >= total;
  }

  // Waits for a queued run to end (the run queue's list), then shows its results or why it failed.
  async function follow(id) {
    for (;;) {
      const runs = await Board.api('GET', '/api/runs');
      const state = runs.runs.find((r) => r.id === id);
      if (state && state.state !== 'queued' && state.state !== 'running') {
        if (state.state !== 'finished') throw new Error(Board.t('evaluate.run_ended', { run: id, state: state.state, error: state.error || '' }));
        run = id;
        await listRuns();
        await showResults();
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }

  async function listRuns() {
    const runs = await Board.api('GET', '/api/evaluate/runs');
    $('evaluate-run-list').replaceChildren(...runs.runs.map((r) => { const o = Board.el('option'); o.value = r; return o; }));
  }

  Board.registerTab('evaluate', {
    shown() { act(listRuns); },
    async init(element) {
      pane = element;
      $('evaluate-start').addEventListener('click', () => act(async () => {
        const run = await Board.api('POST', '/api/evaluate/start', {
          ...Board.selection(),
          datasets: $('evaluate-datasets').value.split(',').map((d) => d.trim()).filter(Boolean),
          max_samples: Number($('evaluate-max-samples').value),
          cutoff_len: Number($('evaluate-cutoff-len').value),
          per_device_eval_batch_size: Number($('evaluate-batch-size').value),
          max_new_tokens: Number($('evaluate-max-new-tokens').value),
          predict: $('evaluate-predict').checked,
        });
        $('evaluate-started').textContent = Board.t('evaluate.started', { run: run.id });
        $('evaluate-started').hidden = false;
        $('evaluate-run-dir').value = run.id;
        await follow(run.id);
      }));
      $('evaluate-show').addEventListener('click', () => act(async () => {
        run = $('evaluate-run-dir').value.trim();
        await showResults();
      }));
      $('evaluate-previous').addEventListener('click', () => act(() => showPage(Math.max(0, offset - pageSize))));
      $('evaluate-next').addEventListener('click', () => act(() => showPage(offset + pageSize)));
    },
    languageChanged() { if (run && !$('evaluate-browser').hidden) act(() => showPage(offset)); },
  });
})();
