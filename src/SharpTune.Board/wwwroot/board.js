'use strict';
// SharpTune Board's frame: the JSON API client, labels (i18n), the top bar's selection and the tabs.
// A tab is tabs/NAME.html (its markup, loaded into #tab-NAME) and tabs/NAME.js, which calls
// Board.registerTab(NAME, { init(pane), shown(), languageChanged() }); its labels live in i18n/NAME.en.json and
// i18n/NAME.zh.json, keys prefixed "NAME.".
const Board = (() => {
  const tabs = new Map();
  const selectionListeners = [];
  let labels = {};
  let language = 'en';

  function cookie(name) {
    const match = document.cookie.match(new RegExp('(?:^|; )' + name + '=([^;]*)'));
    return match ? decodeURIComponent(match[1]) : '';
  }

  // Every call to the board: JSON in and out; an error reply ({error}) becomes a thrown Error with .status.
  async function api(method, path, body) {
    const init = { method, headers: {} };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    if (method !== 'GET') init.headers['X-CSRF-Token'] = cookie('sharptune_csrf');
    const reply = await fetch(path, init);
    const text = await reply.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = null; }
    if (!reply.ok) {
      if (reply.status === 401) location.href = '/login.html';
      const error = new Error((data && data.error) || `HTTP ${reply.status}`);
      error.status = reply.status;
      throw error;
    }
    return data;
  }

  // A label in the current language; {name} placeholders are filled from vars.
  function t(key, vars) {
    let text = Object.prototype.hasOwnProperty.call(labels, key) ? labels[key] : key;
    for (const [name, value] of Object.entries(vars || {})) text = text.split('{' + name + '}').join(String(value));
    return text;
  }

  function applyLabels(root) {
    root.querySelectorAll('[data-i18n]').forEach((el) => { el.textContent = t(el.dataset.i18n); });
    root.querySelectorAll('[data-i18n-title]').forEach((el) => { el.title = t(el.dataset.i18nTitle); });
    root.querySelectorAll('[data-i18n-placeholder]').forEach((el) => { el.placeholder = t(el.dataset.i18nPlaceholder); });
  }

  async function setLanguage(next) {
    labels = await api('GET', `/api/i18n/${next}`);
    language = next;
    localStorage.setItem('sharptune.language', next);
    document.documentElement.lang = next === 'zh' ? 'zh-CN' : 'en';
    document.getElementById('language').value = next;
    applyLabels(document);
    for (const tab of tabs.values()) if (tab.languageChanged) tab.languageChanged();
  }

  // An element with optional class and text: the tabs build their dynamic parts with it.
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // Shows an error (an Error or a message) in a panel, or hides the panel when error is null.
  function showError(panel, error) {
    panel.hidden = !error;
    panel.textContent = error ? (error.message || String(error)) : '';
  }

  function setOptions(select, values, labelOf) {
    const keep = Array.from(select.selectedOptions).map((o) => o.value);
    select.replaceChildren(...values.map((value) => {
      const option = el('option', null, labelOf ? labelOf(value) : String(value));
      option.value = String(value);
      option.selected = keep.includes(String(value));
      return option;
    }));
  }

  // The top bar: what every tab works on.
  function selection() {
    const bit = document.getElementById('quantization-bit').value;
    return {
      model: document.getElementById('model').value.trim(),
      finetuning_type: document.getElementById('finetuning-type').value,
      adapters: Array.from(document.getElementById('adapters').selectedOptions).map((o) => o.value),
      quantization_bit: bit === '' ? null : Number(bit),
      quantization_type: document.getElementById('quantization-type').value,
      template: document.getElementById('template').value,
    };
  }

  function onSelectionChange(listener) { selectionListeners.push(listener); }

  async function refreshModelDependent() {
    const s = selection();
    const note = document.getElementById('topbar-note');
    note.hidden = true;
    if (!s.model) return;
    try {
      const adapters = await api('GET', `/api/adapters?model=${encodeURIComponent(s.model)}&finetuning_type=${encodeURIComponent(s.finetuning_type)}`);
      setOptions(document.getElementById('adapters'), adapters.adapters);
      const check = await api('GET', `/api/template-check?model=${encodeURIComponent(s.model)}&template=${encodeURIComponent(s.template)}`);
      note.className = 'note' + (check.warning ? ' warning' : '');
      note.textContent = check.warning || t('board.template_resolved', { name: check.template });
      note.hidden = false;
    } catch (error) {
      note.className = 'note error';
      note.textContent = error.message;
      note.hidden = false;
    }
  }

  async function initTopBar() {
    const options = await api('GET', '/api/options');
    setOptions(document.getElementById('finetuning-type'), options.finetuning_types);
    setOptions(document.getElementById('quantization-bit'), ['', ...options.quantization_bits], (v) => v === '' ? t('board.none') : v);
    setOptions(document.getElementById('quantization-type'), options.quantization_types);
    setOptions(document.getElementById('template'), ['auto', ...options.templates]);
    const models = await api('GET', '/api/models');
    document.getElementById('model-list').replaceChildren(...models.models.map((m) => { const o = el('option'); o.value = m; return o; }));
    for (const id of ['model', 'finetuning-type', 'adapters', 'quantization-bit', 'quantization-type', 'template']) {
      document.getElementById(id).addEventListener('change', async () => {
        if (id !== 'adapters' && id !== 'quantization-bit' && id !== 'quantization-type') await refreshModelDependent();
        for (const listener of selectionListeners) listener(selection());
      });
    }
  }

  function show(name) {
    for (const button of document.querySelectorAll('#tabs button')) button.classList.toggle('active', button.dataset.tab === name);
    for (const pane of document.querySelectorAll('main .tab')) pane.hidden = pane.id !== `tab-${name}`;
    history.replaceState(null, '', `#${name}`);
    const tab = tabs.get(name);
    if (tab && tab.shown) tab.shown();
  }

  function registerTab(name, tab) { tabs.set(name, tab); }

  async function start() {
    for (const pane of document.querySelectorAll('main .tab')) {
      const name = pane.id.slice('tab-'.length);
      pane.innerHTML = await (await fetch(`/tabs/${name}.html`)).text();
    }
    const saved = localStorage.getItem('sharptune.language');
    await setLanguage(saved || (navigator.language.startsWith('zh') ? 'zh' : 'en'));
    document.getElementById('language').addEventListener('change', (e) => setLanguage(e.target.value));
    await initTopBar();
    for (const [name, tab] of tabs) if (tab.init) await tab.init(document.getElementById(`tab-${name}`));
    for (const button of document.querySelectorAll('#tabs button')) button.addEventListener('click', () => show(button.dataset.tab));
    const wanted = location.hash.slice(1);
    show(tabs.has(wanted) ? wanted : 'train');
    document.body.dataset.ready = 'true';
  }

  // The CSRF header's value, for requests made without api() (a streamed reply).
  const csrf = () => cookie('sharptune_csrf');

  return { api, csrf, t, el, applyLabels, setLanguage, language: () => language, showError, setOptions, selection, onSelectionChange, registerTab, show, start };
})();

document.addEventListener('DOMContentLoaded', () => Board.start().catch((error) => {
  const panel = Board.el('p', 'error', error.message);
  document.querySelector('main').prepend(panel);
}));
