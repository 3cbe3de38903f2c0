/** A tiny DOM builder and the shared UI bits (toasts, dialogs). */

type Child = Node | string | number | null | undefined | false;
/** An `on*` listener (any event type). */
type Listener = (ev: never) => unknown;
type Attrs = Record<string, string | number | boolean | Listener | null | undefined>;

/**
 * `h('button', {class: 'btn', onclick: fn, 'aria-label': 'x'}, 'text')`. `on*` keys become
 * listeners, `class`/`text`/`value`/`checked`/`disabled`/`selected`/`hidden` set properties,
 * `null`/`undefined`/`false` attributes are skipped, everything else is an attribute.
 */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function')
      el.addEventListener(k.slice(2), v as EventListener);
    else if (k === 'class') el.className = String(v);
    else if (k === 'text') el.textContent = String(v);
    else if (
      k === 'value' ||
      k === 'checked' ||
      k === 'disabled' ||
      k === 'selected' ||
      k === 'hidden'
    )
      (el as unknown as Record<string, unknown>)[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

export function append(el: Element, children: (Child | Child[])[]): void {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'number' ? String(c) : c);
  }
}

/** Replaces an element's children. */
export function replace(el: Element, ...children: (Child | Child[])[]): void {
  el.replaceChildren();
  append(el, children);
}

let toastHost: HTMLElement | null = null;

/** A short message in the corner, announced to screen readers. */
export function toast(message: string, kind: 'info' | 'error' = 'info'): void {
  if (!toastHost) {
    toastHost = h('div', { class: 'toasts', role: 'status', 'aria-live': 'polite' });
    document.body.append(toastHost);
  }
  const t = h('div', { class: `toast toast-${kind}` }, message);
  toastHost.append(t);
  window.setTimeout(() => t.remove(), kind === 'error' ? 8000 : 3500);
}

/**
 * A modal dialog (native `<dialog>`: focus trapped, Escape closes). `build` fills the form and
 * returns its submit handler; the dialog closes when that resolves to true.
 */
export function openDialog(
  title: string,
  build: (form: HTMLFormElement, close: () => void) => () => Promise<boolean> | boolean,
  opts: { submitLabel?: string; danger?: boolean; testId?: string } = {},
): void {
  const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const form = h('form', { class: 'dialog-form', method: 'dialog' });
  const dialog = h('dialog', {
    class: 'dialog',
    'aria-label': title,
    'data-testid': opts.testId ?? 'dialog',
  });
  const close = () => {
    dialog.close();
  };
  const submitBtn = h(
    'button',
    {
      type: 'submit',
      class: opts.danger ? 'btn btn-danger' : 'btn btn-primary',
      'data-testid': 'dialog-submit',
    },
    opts.submitLabel ?? 'Save',
  );
  const onSubmit = build(form, close);
  append(form, [
    error,
    h(
      'div',
      { class: 'dialog-actions' },
      h('button', { type: 'button', class: 'btn', onclick: close }, 'Cancel'),
      submitBtn,
    ),
  ]);
  dialog.append(h('h2', { class: 'dialog-title' }, title), form);
  const submit = async () => {
    submitBtn.disabled = true;
    error.hidden = true;
    try {
      if (await onSubmit()) close();
    } catch (err) {
      error.textContent = err instanceof Error ? err.message : String(err);
      error.hidden = false;
    } finally {
      submitBtn.disabled = false;
    }
  };
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void submit();
  });
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  const first = form.querySelector<HTMLElement>('input, select, textarea');
  (first ?? submitBtn).focus();
}

/** A labelled form field. */
export function field(label: string, control: HTMLElement, hint?: string): HTMLElement {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  return h(
    'div',
    { class: 'field' },
    h('label', { for: id }, label),
    control,
    hint ? h('small', { class: 'hint' }, hint) : null,
  );
}

/**
 * A labelled control with a place for the error that names it (hidden until shown): the
 * control's id is `<prefix>-<key>`, the error's test id `<prefix>-error-<key>`, and the error
 * is registered in `errors` under `key`.
 */
export function fieldWithError<K extends string>(
  prefix: string,
  key: K,
  label: string,
  control: HTMLElement,
  errors: Map<K, HTMLElement>,
  hint?: string,
): HTMLElement {
  const id = `${prefix}-${key}`;
  control.id = id;
  const error = h('p', {
    class: 'form-error field-error',
    role: 'alert',
    hidden: true,
    'data-testid': `${prefix}-error-${key}`,
  });
  errors.set(key, error);
  return h(
    'div',
    { class: 'field' },
    h('label', { for: id }, label),
    control,
    hint ? h('small', { class: 'hint' }, hint) : null,
    error,
  );
}

let tipCount = 0;

/**
 * A small focusable control with an explanation in a popover that opens on focus (keyboard),
 * on tap or click, and on hover; Escape, leaving it or a second tap closes it. The popover is
 * the control's description (`aria-describedby`), so screen readers read it too.
 */
export function infoTip(label: Child, text: string, attrs: Attrs = {}): HTMLElement {
  const id = `tip-${++tipCount}`;
  const pop = h('span', { class: 'tip-pop', role: 'tooltip', id, hidden: true }, text);
  let focusedAt = 0;
  const show = (open: boolean) => {
    pop.hidden = !open;
    button.setAttribute('aria-expanded', String(open));
  };
  const button = h(
    'button',
    {
      type: 'button',
      'aria-describedby': id,
      'aria-expanded': 'false',
      ...attrs,
      class: `tip-btn ${typeof attrs.class === 'string' ? attrs.class : ''}`.trim(),
      onfocus: () => {
        focusedAt = Date.now();
        show(true);
      },
      onblur: () => show(false),
      // A tap focuses, then clicks: that click keeps it open; a later one toggles.
      onclick: () => show(Date.now() - focusedAt < 400 ? true : pop.hidden),
      onkeydown: (e: KeyboardEvent) => {
        if (e.key === 'Escape' && !pop.hidden) {
          e.stopPropagation();
          show(false);
        }
      },
      onmouseenter: () => show(true),
      onmouseleave: () => {
        if (document.activeElement !== button) show(false);
      },
    },
    label,
  );
  return h('span', { class: 'tip' }, button, pop);
}
