'use strict';
// The chat tab: one model loaded in the board's process (POST /api/chat/load, polled while it loads), a history kept
// here and sent whole with each message, the reply streamed as JSON lines from POST /api/chat/reply.
(() => {
  let pane;
  let history = [];
  let status = { state: 'empty' };
  let streaming = null;
  const $ = (id) => pane.querySelector('#' + id);
  const stateLabels = { empty: 'chat.state_empty', loading: 'chat.state_loading', loaded: 'chat.state_loaded', failed: 'chat.state_failed' };
  const roleLabels = { user: 'chat.user', assistant: 'chat.assistant' };

  function showStatus() {
    const state = $('chat-state');
    state.textContent = Board.t(stateLabels[status.state], {
      model: [status.model, ...(status.adapters || [])].filter(Boolean).join(' + '),
      template: status.template, seconds: Math.round(status.seconds || 0), error: status.error,
    });
    state.className = 'note' + (status.state === 'failed' ? ' error' : '');
    $('chat-load').disabled = status.state === 'loading' || status.state === 'loaded';
    $('chat-unload').disabled = status.state !== 'loaded' && status.state !== 'failed';
    $('chat-send').disabled = status.state !== 'loaded' || streaming !== null;
    $('chat-stop').disabled = streaming === null;
    $('chat-thinking-box').hidden = !status.thinking;
  }

  async function refresh() {
    status = await Board.api('GET', '/api/chat/status');
    showStatus();
    if (status.state === 'loading') setTimeout(() => refresh().catch((e) => Board.showError($('chat-error'), e)), 1000);
  }

  async function act(work) {
    Board.showError($('chat-error'), null);
    try { await work(); } catch (error) { Board.showError($('chat-error'), error); }
  }

  function bubble(role, text) {
    const item = Board.el('div', 'chat-message ' + role);
    item.append(Board.el('b', null, Board.t(roleLabels[role])), Board.el('div', 'chat-text', text));
    $('chat-log').append(item);
    item.scrollIntoView({ block: 'end' });
    return item.querySelector('.chat-text');
  }

  function request(text) {
    const messages = [];
    const system = $('chat-system').value.trim();
    if (system) messages.push({ role: 'system', content: system });
    messages.push(...history, { role: 'user', content: text });
    const body = {
      messages,
      max_tokens: Number($('chat-max-tokens').value),
      temperature: Number($('chat-temperature').value),
      top_p: Number($('chat-top-p').value),
    };
    const tools = $('chat-tools').value.trim();
    if (tools) {
      try { body.tools = JSON.parse(tools); } catch (error) { throw new Error(Board.t('chat.tools_invalid', { error: error.message })); }
    }
    if (status.thinking) body.enable_thinking = $('chat-thinking').checked;
    return body;
  }

  async function send() {
    const text = $('chat-input').value.trim();
    if (!text || streaming) return;
    const body = request(text);
    bubble('user', text);
    const target = bubble('assistant', '');
    streaming = new AbortController();
    showStatus();
    let reply = '';
    try {
      const response = await fetch('/api/chat/reply', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': Board.csrf() },
        body: JSON.stringify(body),
        signal: streaming.signal,
      });
      if (!response.ok) {
        const error = await response.json().catch(() => ({}));
        throw new Error(error.error || `HTTP ${response.status}`);
      }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffered = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffered += value;
        let newline;
        while ((newline = buffered.indexOf('\n')) >= 0) {
          const line = JSON.parse(buffered.slice(0, newline));
          buffered = buffered.slice(newline + 1);
          if (line.text !== undefined) {
            reply += line.text;
            target.textContent = reply;
          } else if (line.done) {
            for (const call of line.tool_calls || []) target.parentElement.append(Board.el('div', 'chat-tool', Board.t('chat.tool_call', call)));
            if (line.finish_reason === 'cancelled') target.append(' ' + Board.t('chat.stopped'));
          }
        }
      }
      history.push({ role: 'user', content: text }, { role: 'assistant', content: reply });
      $('chat-input').value = '';
    } catch (error) {
      if (error.name === 'AbortError') target.textContent = reply + ' ' + Board.t('chat.stopped');
      else { target.parentElement.remove(); Board.showError($('chat-error'), error); }
    } finally {
      streaming = null;
      showStatus();
    }
  }

  Board.registerTab('chat', {
    async init(element) {
      pane = element;
      $('chat-load').addEventListener('click', () => act(async () => {
        status = await Board.api('POST', '/api/chat/load', Board.selection());
        await refresh();
      }));
      $('chat-unload').addEventListener('click', () => act(async () => {
        if (streaming) streaming.abort();
        status = await Board.api('POST', '/api/chat/unload');
        showStatus();
      }));
      $('chat-send').addEventListener('click', () => act(send));
      $('chat-input').addEventListener('keydown', (e) => { if (e.key === 'Enter' && e.ctrlKey) act(send); });
      $('chat-stop').addEventListener('click', () => { if (streaming) streaming.abort(); });
      $('chat-clear').addEventListener('click', () => { history = []; $('chat-log').replaceChildren(); });
      await refresh();
    },
    shown() { act(refresh); },
    languageChanged() { if (pane) showStatus(); },
  });
})();
