/** The sign-in page: paste a key (the gateway turns it into a session cookie). */

import { field, h } from '../dom';
import { signIn } from '../session';

/** The page; `done` runs once signed in. `notice` explains why it is shown (e.g. expired). */
export function signInPage(done: () => void, notice?: string): HTMLElement {
  const input = h('input', {
    type: 'password',
    required: true,
    autocomplete: 'off',
    spellcheck: 'false',
    placeholder: 'rtd_…',
    'data-testid': 'signin-key',
  });
  const error = h('p', {
    class: 'signin-error',
    role: 'alert',
    'data-testid': 'signin-error',
    hidden: true,
  });
  const button = h(
    'button',
    { class: 'btn btn-primary', type: 'submit', 'data-testid': 'signin-submit' },
    'Sign in',
  );
  const form = h(
    'form',
    {
      class: 'welcome-form',
      onsubmit: (e: Event) => {
        e.preventDefault();
        button.disabled = true;
        error.hidden = true;
        signIn(input.value)
          .then(() => {
            input.value = '';
            done();
          })
          .catch((err: unknown) => {
            error.textContent = err instanceof Error ? err.message : String(err);
            error.hidden = false;
          })
          .finally(() => {
            button.disabled = false;
          });
      },
    },
    field('API key', input, 'A viewer, editor or admin key of your tenant (docs/security.md)'),
    button,
  );
  return h(
    'section',
    { class: 'welcome', 'data-testid': 'signin' },
    h('h1', {}, 'Sign in'),
    notice ? h('p', { class: 'muted', 'data-testid': 'signin-notice' }, notice) : null,
    h(
      'p',
      { class: 'muted' },
      'Paste an API key. The browser keeps only a session cookie, never the key.',
    ),
    form,
    error,
  );
}
