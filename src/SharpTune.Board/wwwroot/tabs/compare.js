'use strict';
// The compare tab: the base and each selected adapter answer the same questions (POST /api/compare); the task is
// followed until the report is there, then shown as a table, a column per model.
(() => {
  let pane;
  let task = { state: 'none' };
  const $ = (id) => pane.querySelector('#' + id);
  const stateLabels = { running: 'compare.state_running', finished: 'compare.state_finished', failed: 'compare.state_failed', cancelled: 'compare.state_cancelled' };
  const source = () => pane.querySelector('input[name="compare-source"]:checked').value;
  const score = (value) => value.toFixed(2);

  function table(result) {
    const head = Board.el('tr');
    head.append(Board.el('th', null, Board.t('compare.question')));
    const referenced = result.questions.some((q) => q.reference !== null);
    if (referenced) head.append(Board.el('th', null, Board.t('compare.reference')));
    for (const column of result.columns) {
      const th = Board.el('th', null, column.name);
      if (column.scores) th.append(Board.el('div', 'note', Board.t('compare.mean_scores', { bleu: score(column.scores['bleu-4']), rouge: score(column.scores['rouge-l']) })));
      head.append(th);
    }
    const rows = result.questions.map((q, i) => {
      const tr = Board.el('tr');
      tr.append(Board.el('td', null, q.question));
      if (referenced) tr.append(Board.el('td', null, q.reference || ''));
      for (const column of result.columns) {
        const answer = column.answers[i];
        const td = Board.el('td', 'answer', answer.text);
        if (answer.scores) td.append(Board.el('div', 'note', Board.t('compare.mean_scores', { bleu: score(answer.scores['bleu-4']), rouge: score(answer.scores['rouge-l']) })));
        tr.append(td);
      }
      return tr;
    });
    $('compare-table').replaceChildren(head, ...rows);
  }

  function show() {
    const running = task.state === 'running';
    $('compare-start').disabled = running;
    $('compare-cancel').disabled = !running;
    $('compare-task').hidden = task.state === 'none';
    if (task.state === 'none') return;
    $('compare-state').textContent = Board.t(stateLabels[task.state], { seconds: Math.round(task.seconds), error: task.error });
    $('compare-state').className = 'note' + (task.state === 'failed' ? ' error' : '');
    $('compare-progress').max = task.progress ? task.progress.total : 1;
    $('compare-progress').value = task.progress ? task.progress.done : 0;
    $('compare-notes').textContent = task.notes.join('\n');
    $('compare-report').hidden = task.state !== 'finished';
    if (task.state === 'finished') {
      $('compare-files').textContent = `${task.result.markdown}, ${task.result.html}`;
      table(task.result);
    }
  }

  async function follow() {
    task = await Board.api('GET', '/api/compare/status');
    show();
    if (task.state === 'running') setTimeout(() => follow().catch((e) => Board.showError($('compare-error'), e)), 1000);
  }

  async function act(work) {
    Board.showError($('compare-error'), null);
    try { await work(); } catch (error) { Board.showError($('compare-error'), error); }
  }

  function showSource() {
    const typed = source() === 'typed';
    $('compare-typed-box').hidden = !typed;
    $('compare-dataset-box').hidden = typed;
    $('compare-samples-box').hidden = typed;
  }

  Board.registerTab('compare', {
    async init(element) {
      pane = element;
      pane.querySelectorAll('input[name="compare-source"]').forEach((radio) => radio.addEventListener('change', showSource));
      $('compare-start').addEventListener('click', () => act(async () => {
        const body = { ...Board.selection(), max_new_tokens: Number($('compare-max-tokens').value) };
        if (source() === 'typed') body.questions = $('compare-questions').value.split('\n').map((q) => q.trim()).filter(Boolean);
        else {
          body.datasets = $('compare-datasets').value.split(',').map((d) => d.trim()).filter(Boolean);
          body.max_samples = Number($('compare-max-samples').value);
        }
        task = await Board.api('POST', '/api/compare', body);
        show();
        await follow();
      }));
      $('compare-cancel').addEventListener('click', () => act(async () => { task = await Board.api('POST', '/api/compare/cancel'); show(); }));
      showSource();
      await follow();
    },
    languageChanged() { if (pane) show(); },
  });
})();
