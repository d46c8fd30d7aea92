import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { CADDY_SHIPPED_VALUES, caddyConfigProblem, caddyUnavailable } from './support/caddy.js';
import { FORWARD_AUTH_DEPLOY, renderTemplateFile } from './support/edge-proxy.js';
import { NGINX_SHIPPED_VALUES, nginxConfigProblem, nginxUnavailable } from './support/nginx.js';

// The shipped forward-auth configs: the tested templates are them, verbatim; the proxies
// accept them; the settings the security of forward auth rests on are there.

const shipped = (name: string) => readFileSync(path.join(FORWARD_AUTH_DEPLOY, name), 'utf8');
const yamlDocs = (name: string): any[] => parseAllDocuments(shipped(name)).map((d) => {
  if (d.errors.length) throw new Error(`${name}: ${d.errors[0]!.message}`);
  return d.toJS();
});
const NO_NGINX = nginxUnavailable();
const NO_CADDY = caddyUnavailable();

describe('the shipped forward-auth configs', () => {
  it('the templates the proxy tests run are the shipped files with only addresses left open', () => {
    expect(renderTemplateFile('nginx.conf.template', NGINX_SHIPPED_VALUES)).toBe(shipped('nginx.conf'));
    expect(renderTemplateFile('Caddyfile.template', CADDY_SHIPPED_VALUES)).toBe(shipped('Caddyfile'));
  });

  it(`nginx -t accepts nginx.conf${NO_NGINX ? ` (skipped: ${NO_NGINX})` : ''}`, ({ skip }) => {
    skip(Boolean(NO_NGINX), NO_NGINX ?? '');
    expect(nginxConfigProblem({ sessiongate: '127.0.0.1:8080', app: '127.0.0.1:9000' })).toBeNull();
    // the check is real: a broken directive is refused
    expect(nginxConfigProblem({ sessiongate: '127.0.0.1:8080 bogus', app: '127.0.0.1:9000' })).toMatch(/invalid parameter|emerg/);
  });

  it(`caddy validate accepts the Caddyfile${NO_CADDY ? ` (skipped: ${NO_CADDY})` : ''}`, ({ skip }) => {
    skip(Boolean(NO_CADDY), NO_CADDY ?? '');
    expect(caddyConfigProblem({ sessiongate: '127.0.0.1:8080', app: '127.0.0.1:9000' })).toBeNull();
    expect(caddyConfigProblem({ sessiongate: '127.0.0.1:8080 {', app: '127.0.0.1:9000' })).not.toBeNull();
  });

  it('Traefik: never trusts the client X-Forwarded-*, replaces X-Session and drops the client Cookie and Authorization', () => {
    const [dynamic] = yamlDocs('traefik-dynamic.yaml');
    const crd = yamlDocs('traefik-middleware.yaml').find((d) => d.kind === 'Middleware');
    for (const fa of [dynamic.http.middlewares.sessiongate.forwardAuth, crd.spec.forwardAuth]) {
      expect(fa.trustForwardHeader).toBe(false);
      expect(fa.address).toMatch(/\/_sessiongate\/authz$/);
      expect(fa.authResponseHeaders).toEqual(['X-Session', 'X-Sessiongate-Cookie', 'X-Sessiongate-Authorization', 'Cookie', 'Authorization']);
    }
  });

  it('ingress-nginx: no auth cache, X-Session, Cookie and Authorization replaced from the answer', () => {
    const ingresses = yamlDocs('ingress-nginx.yaml');
    const protectedOne = ingresses.find((i) => i.metadata.annotations?.['nginx.ingress.kubernetes.io/auth-url']);
    const a = protectedOne.metadata.annotations as Record<string, string>;
    expect(Object.keys(a).filter((k) => /auth-cache/.test(k))).toEqual([]);
    expect(a['nginx.ingress.kubernetes.io/auth-url']).toMatch(/\/_sessiongate\/authz$/);
    expect(a['nginx.ingress.kubernetes.io/auth-response-headers']!.split(',').map((s) => s.trim())).toEqual(['X-Session', 'X-Sessiongate-Cookie', 'X-Sessiongate-Authorization', 'Cookie', 'Authorization']);
    expect(a['nginx.ingress.kubernetes.io/auth-signin']).toBe('/auth/login?next=$escaped_request_uri');
    // the comment that explains the trap stays with the file
    expect(shipped('ingress-nginx.yaml')).toMatch(/auth-cache-key[\s\S]*revoked/);
  });

  it('Envoy: ext_authz on the endpoint prefix, failing closed, canonical paths, no session cookie or API key upstream', () => {
    const [envoy] = yamlDocs('envoy.yaml');
    const hcm = envoy.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
    expect([hcm.normalize_path, hcm.merge_slashes, hcm.path_with_escaped_slashes_action]).toEqual([true, true, 'REJECT_REQUEST']);
    const authz = hcm.http_filters.find((f: { name: string }) => f.name === 'envoy.filters.http.ext_authz').typed_config;
    expect(authz.failure_mode_allow).toBe(false);
    expect(authz.http_service.path_prefix).toBe('/_sessiongate/authz');
    expect(authz.allowed_headers.patterns).toContainEqual({ exact: 'cookie' });
    expect(authz.http_service.authorization_response.allowed_upstream_headers.patterns).toEqual([{ exact: 'x-session' }, { exact: 'x-sessiongate-cookie' }, { exact: 'x-sessiongate-authorization' }]);
    const routes = hcm.route_config.virtual_hosts[0].routes;
    const appRoute = routes.find((r: { match: { prefix: string } }) => r.match.prefix === '/');
    expect(appRoute.request_headers_to_remove).toEqual(['cookie', 'authorization']);
    const blocked = routes.find((r: { match: { prefix: string } }) => r.match.prefix === '/_sessiongate/');
    expect(blocked.direct_response.status).toBe(404);
  });
});

describe('docs/forward-auth.md', () => {
  it('shows every shipped config exactly as shipped', () => {
    const page = readFileSync(path.join(FORWARD_AUTH_DEPLOY, '../../docs/forward-auth.md'), 'utf8');
    for (const name of ['nginx.conf', 'Caddyfile', 'traefik-dynamic.yaml', 'traefik-middleware.yaml', 'ingress-nginx.yaml', 'envoy.yaml']) {
      expect(page.includes(`\`deploy/forward-auth/${name}\``), `${name} is named`).toBe(true);
      expect(page.includes(`\n${shipped(name).trimEnd()}\n\`\`\``), `${name} is shown verbatim`).toBe(true);
    }
  });
});
