'use strict';
// The export tab: merges the top bar's adapters into its model (POST /api/export) and follows the task until it ends.
(() => {
  let pane;
  let task = { state: 'none' };
  const $ = (id) => pane.querySelector('#' + id);
  const stateLabels = { running: 'export.state_running', finished: 'export.state_finished', failed: 'export.state_failed', cancelled: 'export.state_cancelled' };

  function show() {
    const running = task.state === 'running';
    $('export-start').disabled = running;
    $('export-cancel').disabled = !running;
    $('export-task').hidden = task.state === 'none';
    if (task.state === 'none') return;
    $('export-state').textContent = Board.t(stateLabels[task.state], { seconds: Math.round(task.seconds), error: task.error });
    $('export-state').className = 'note' + (task.state === 'failed' ? ' error' : '');
    $('export-progress').max = task.progress ? task.progress.total : 1;
    $('export-progress').value = task.progress ? task.progress.done : 0;
    $('export-notes').textContent = task.notes.join('\n');
    $('export-result').hidden = task.state !== 'finished';
    if (task.state === 'finished') {
      $('export-folder').textContent = task.result.export_dir;
      $('export-files').replaceChildren(...task.result.files.map((f) => Board.el('li', null, f)));
    }
  }

  async function follow() {
    task = await Board.api('GET', '/api/export/status');
    show();
    if (task.state === 'running') setTimeout(() => follow().catch((e) => Board.showError($('export-error'), e)), 1000);
  }

  async function act(work) {
    Board.showError($('export-error'), null);
    try { await work(); } catch (error) { Board.showError($('export-error'), error); }
  }

  function suggestFolder() {
    const model = Board.selection().model.replace(/\/+$/, '');
    if (!$('export-dir').value && model) $('export-dir').value = `saves/${model.split('/').pop()}/export/merged`;
  }

  Board.registerTab('export', {
    async init(element) {
      pane = element;
      $('export-start').addEventListener('click', () => act(async () => {
        task = await Board.api('POST', '/api/export', {
          ...Board.selection(), export_dir: $('export-dir').value.trim(), export_size: Number($('export-size').value), dtype: $('export-dtype').value,
        });
        show();
        await follow();
      }));
      $('export-cancel').addEventListener('click', () => act(async () => { task = await Board.api('POST', '/api/export/cancel'); show(); }));
      Board.onSelectionChange(suggestFolder);
      await follow();
    },
    shown() { suggestFolder(); },
    languageChanged() { if (pane) show(); },
  });
})();
