import { serviceRegistry } from '@sessiongate/service-kit';
import { Counter, Gauge, type Registry } from 'prom-client';

export type LoginOutcome = 'success' | 'invalid_credentials' | 'throttled' | 'disabled' | 'bad_request';
export type RevokeReason = 'logout' | 'logout_all' | 'revoke' | 'disable' | 'replaced' | 'limit';

/**
 * The auth service's Prometheus metrics, in a registry of its own (two apps in one process
 * must not collide in the global one), served on the metrics listener only.
 */
export class AuthMetrics {
  readonly registry: Registry;
  readonly logins: Counter<'outcome'>;
  readonly throttled: Counter<'scope'>;
  readonly sessionsCreated: Counter;
  readonly sessionsRevoked: Counter<'reason'>;
  readonly usersReloads: Counter<'result'>;
  readonly passwordChecks: Counter<'cost'>;
  readonly usersLastReloadSuccessful: Gauge;

  constructor(opts: { defaultMetrics?: boolean; users?: () => number } = {}) {
    // the package version, from the same path in src/ and dist/
    this.registry = serviceRegistry({ packageJson: new URL('../package.json', import.meta.url), defaultMetrics: opts.defaultMetrics });
    const registers = [this.registry];
    this.logins = new Counter({
      name: 'sessiongate_auth_logins_total',
      help: 'Login attempts by outcome (success, invalid_credentials, throttled, disabled, bad_request)',
      labelNames: ['outcome'],
      registers,
    });
    this.throttled = new Counter({
      name: 'sessiongate_auth_throttled_total',
      help: 'Login attempts refused with 429, by the limit that was hit (account, ip)',
      labelNames: ['scope'],
      registers,
    });
    this.sessionsCreated = new Counter({
      name: 'sessiongate_auth_sessions_created_total',
      help: 'Sessions created by successful logins',
      registers,
    });
    this.sessionsRevoked = new Counter({
      name: 'sessiongate_auth_sessions_revoked_total',
      help: 'Sessions ended by the auth service, by reason (logout, logout_all, revoke, disable, replaced, limit)',
      labelNames: ['reason'],
      registers,
    });
    this.usersReloads = new Counter({
      name: 'sessiongate_auth_users_reloads_total',
      help: 'Reloads of the users file by result (success, failure)',
      labelNames: ['result'],
      registers,
    });
    this.passwordChecks = new Counter({
      name: 'sessiongate_auth_password_checks_total',
      help: 'Password checks by scrypt cost (e.g. "ln=17,r=8,p=1"), unknown user names included: shows which old costs are still in use',
      labelNames: ['cost'],
      registers,
    });
    this.usersLastReloadSuccessful = new Gauge({
      name: 'sessiongate_auth_users_last_reload_successful',
      help: '1 if the last users file reload succeeded (or none was tried yet), 0 if it failed and older users are in force',
      registers,
    });
    this.usersLastReloadSuccessful.set(1);
    const users = opts.users;
    new Gauge({
      name: 'sessiongate_auth_users',
      help: 'Users in the loaded users directory',
      registers,
      collect() {
        if (users) this.set(users());
      },
    });
    // pre-create the series so dashboards see zeros, not gaps
    for (const outcome of ['success', 'invalid_credentials', 'throttled', 'disabled', 'bad_request'] as const) this.logins.inc({ outcome }, 0);
    for (const scope of ['account', 'ip'] as const) this.throttled.inc({ scope }, 0);
    for (const reason of ['logout', 'logout_all', 'revoke', 'disable', 'replaced', 'limit'] as const) this.sessionsRevoked.inc({ reason }, 0);
    for (const result of ['success', 'failure'] as const) this.usersReloads.inc({ result }, 0);
  }

  /** One reload of the users file finished. */
  usersReloaded(ok: boolean): void {
    this.usersReloads.inc({ result: ok ? 'success' : 'failure' });
    this.usersLastReloadSuccessful.set(ok ? 1 : 0);
  }
}
