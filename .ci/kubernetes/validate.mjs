// Validates the Kubernetes manifests of deploy/kubernetes offline, without a cluster:
//  1. every file the kustomization lists (and only those) parses as YAML;
//  2. every object is checked against the schema of its apiVersion/kind (kubernetes-models: the Kubernetes OpenAPI
//     schemas; @kubernetes-models/prometheus-operator: the ServiceMonitor CRD). Unknown kinds are errors;
//  3. strictly: a field the schema does not name is an error (as `kubectl apply --validate=strict` would say),
//     which the generated validators alone do not report;
//  4. the cross-references between the files: Service selectors and named ports, volumes, Secrets, the drain timing.
// Usage: node validate.mjs DIR   (exit 0: valid; 1: errors, one line each)
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";

const dir = process.argv[2];
if (!dir) {
  console.error("usage: node validate.mjs DIR");
  process.exit(64);
}
const errors = [];
const fail = (where, message) => errors.push(`${where}: ${message}`);

// apiVersion/kind -> the module that models it. Only the kinds the manifests use; a new kind gets a line here.
const models = {
  "v1/ConfigMap": ["kubernetes-models/v1/ConfigMap", "ConfigMap"],
  "v1/Secret": ["kubernetes-models/v1/Secret", "Secret"],
  "v1/Service": ["kubernetes-models/v1/Service", "Service"],
  "v1/PersistentVolumeClaim": ["kubernetes-models/v1/PersistentVolumeClaim", "PersistentVolumeClaim"],
  "apps/v1/Deployment": ["kubernetes-models/apps/v1/Deployment", "Deployment"],
  "policy/v1/PodDisruptionBudget": ["kubernetes-models/policy/v1/PodDisruptionBudget", "PodDisruptionBudget"],
  "monitoring.coreos.com/v1/ServiceMonitor": ["@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor", "ServiceMonitor"],
};

// Wraps an object so that every property the validator reads is recorded. The generated validators read each
// property their schema names (`data.spec`, `data.replicas`...) and enumerate the keys of free-form maps
// (labels, ConfigMap data); whatever was neither read nor enumerated is a field the schema does not know.
function track(value, path, seen) {
  if (value === null || typeof value !== "object") return value;
  const record = { path, value, read: new Set(), enumerated: false };
  seen.push(record);
  const children = new Map();
  return new Proxy(value, {
    get(target, key, receiver) {
      if (typeof key === "string") record.read.add(key);
      const child = Reflect.get(target, key, receiver);
      if (typeof key !== "string" || child === null || typeof child !== "object") return child;
      if (!children.has(key)) children.set(key, track(child, `${path}/${key}`, seen));
      return children.get(key);
    },
    ownKeys(target) {
      record.enumerated = true;
      return Reflect.ownKeys(target);
    },
  });
}

async function validateObject(file, index, object) {
  const where = `${file}#${index} ${object?.kind ?? "?"}/${object?.metadata?.name ?? "?"}`;
  if (!object || typeof object !== "object" || !object.apiVersion || !object.kind) {
    fail(where, "not a Kubernetes object (apiVersion and kind are required)");
    return;
  }
  const entry = models[`${object.apiVersion}/${object.kind}`];
  if (!entry) {
    fail(where, `unknown apiVersion/kind ${object.apiVersion}/${object.kind} (add its model to .ci/kubernetes/validate.mjs)`);
    return;
  }
  const module = await import(entry[0]);
  const Model = module[entry[1]];
  const seen = [];
  const { apiVersion, kind, ...rest } = object;
  const instance = new Model(rest);
  // The model's validate() checks `this`; run its schema validator on a tracked copy instead.
  const plain = JSON.parse(JSON.stringify(instance.toJSON ? instance.toJSON() : { apiVersion, kind, ...rest }));
  try {
    instance.validate.call(track(plain, "", seen));
  } catch (e) {
    fail(where, `schema: ${e.message}`);
    return;
  }
  for (const record of seen) {
    if (record.enumerated || Array.isArray(record.value)) continue;
    for (const key of Object.keys(record.value)) {
      if (!record.read.has(key)) fail(where, `unknown field ${record.path}/${key}`);
    }
  }
}

// 1. The kustomization names the files; no stray manifest is left out of it.
const kustomization = parseAllDocuments(readFileSync(join(dir, "kustomization.yaml"), "utf8"))[0].toJS();
const listed = kustomization.resources ?? [];
for (const file of readdirSync(dir).filter((f) => /\.ya?ml$/.test(f) && f !== "kustomization.yaml")) {
  if (!listed.includes(file)) fail(file, "not listed in kustomization.yaml resources");
}
const objects = [];
for (const file of listed) {
  let text;
  try {
    text = readFileSync(join(dir, file), "utf8");
  } catch {
    fail("kustomization.yaml", `resource ${file} does not exist`);
    continue;
  }
  const documents = parseAllDocuments(text);
  for (const [index, document] of documents.entries()) {
    if (document.errors.length > 0) {
      fail(`${file}#${index}`, `YAML: ${document.errors[0].message.split("\n")[0]}`);
      continue;
    }
    const object = document.toJS();
    if (object === null) continue;
    objects.push({ file, object });
    await validateObject(file, index, object);
  }
}

// 4. Cross-references.
const byKind = (kind) => objects.filter((o) => o.object.kind === kind);
const named = (kind, name) => byKind(kind).find((o) => o.object.metadata?.name === name);
const matches = (selector, labels) => Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v);
for (const { file, object: deployment } of byKind("Deployment")) {
  const pod = deployment.spec?.template;
  const where = `${file} Deployment/${deployment.metadata?.name}`;
  if (!matches(deployment.spec?.selector?.matchLabels, pod?.metadata?.labels)) fail(where, "spec.selector does not match the pod template's labels");
  const containers = pod?.spec?.containers ?? [];
  const portNames = new Set(containers.flatMap((c) => (c.ports ?? []).map((p) => p.name)));
  for (const { file: serviceFile, object: service } of byKind("Service")) {
    if (!matches(service.spec?.selector, pod?.metadata?.labels)) continue;
    for (const port of service.spec?.ports ?? []) {
      if (typeof port.targetPort === "string" && !portNames.has(port.targetPort)) {
        fail(`${serviceFile} Service/${service.metadata?.name}`, `targetPort '${port.targetPort}' is no container port of ${where}`);
      }
    }
  }
  for (const volume of pod?.spec?.volumes ?? []) {
    if (volume.configMap && !named("ConfigMap", volume.configMap.name)) fail(where, `volume ${volume.name}: ConfigMap ${volume.configMap.name} is not defined`);
    if (volume.secret && !named("Secret", volume.secret.secretName)) fail(where, `volume ${volume.name}: Secret ${volume.secret.secretName} is not defined`);
    if (volume.persistentVolumeClaim && !named("PersistentVolumeClaim", volume.persistentVolumeClaim.claimName)) fail(where, `volume ${volume.name}: PersistentVolumeClaim ${volume.persistentVolumeClaim.claimName} is not defined`);
  }
  for (const container of containers) {
    for (const env of container.env ?? []) {
      const ref = env.valueFrom?.secretKeyRef;
      if (ref && !named("Secret", ref.name)) fail(where, `env ${env.name}: Secret ${ref.name} is not defined`);
    }
    for (const [probeName, probe] of [["readinessProbe", container.readinessProbe], ["livenessProbe", container.livenessProbe]]) {
      const port = probe?.httpGet?.port;
      if (typeof port === "string" && !portNames.has(port)) fail(where, `${probeName} port '${port}' is no container port`);
    }
  }
  // The drain timing (README "Kubernetes"): read the gateway's own settings from the mounted ConfigMap.
  const configVolume = (pod?.spec?.volumes ?? []).find((v) => v.configMap);
  const configMap = configVolume && named("ConfigMap", configVolume.configMap.name);
  const json = configMap?.object.data?.["gateway.json"];
  if (!json) {
    fail(where, "no ConfigMap with gateway.json is mounted");
    continue;
  }
  let gateway;
  try {
    gateway = JSON.parse(json).Gateway ?? {};
  } catch (e) {
    fail(`${configMap.file} ConfigMap/${configMap.object.metadata.name}`, `gateway.json is not JSON: ${e.message}`);
    continue;
  }
  const seconds = (value, fallback) => {
    const text = value ?? fallback;
    const m = /^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.\d+)?$/.exec(text);
    if (m) return (+(m[1] ?? 0)) * 86400 + +m[2] * 3600 + +m[3] * 60 + +m[4];
    // The operator forms the gateway also reads (README "Durations"): 250ms, 30s, 5m, 1h, 1d and sums such as 1m30s.
    if (!/^(\d+(\.\d+)?(ms|s|m|h|d))+$/.test(text)) return NaN;
    const unit = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };
    return [...text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)].reduce((sum, [, n, u]) => sum + +n * unit[u], 0);
  };
  const delay = seconds(gateway.Drain?.Delay, "00:00:05");
  const period = seconds(gateway.Drain?.Period, "00:00:10");
  const shutdown = seconds(gateway.ShutdownTimeout, "00:00:30");
  const grace = pod?.spec?.terminationGracePeriodSeconds ?? 30;
  if (!(grace > shutdown)) fail(where, `terminationGracePeriodSeconds ${grace} must exceed Gateway:ShutdownTimeout (${shutdown} s), or the kubelet kills the drain`);
  if (!(shutdown >= delay + period)) fail(where, `Gateway:ShutdownTimeout (${shutdown} s) is less than Drain:Delay + Drain:Period (${delay + period} s)`);
  const gatewayContainer = containers.find((c) => c.readinessProbe);
  const readiness = gatewayContainer?.readinessProbe;
  if (!readiness) {
    fail(where, "no readiness probe");
  } else {
    const detection = (readiness.periodSeconds ?? 10) * (readiness.failureThreshold ?? 3);
    if (!(delay > detection)) fail(where, `Drain:Delay (${delay} s) must exceed the readiness probe's periodSeconds x failureThreshold (${detection} s)`);
    if (readiness.httpGet?.path !== "/readyz") fail(where, "the readiness probe must GET /readyz");
  }
  // Memory against the tunnels the policies admit (README "Kubernetes"): an idle wss tunnel holds about 52 KB of RSS
  // (bench/RESULTS.md), the process and its bursts about 256 MiB; both must fit in 80 % of the container's limit.
  const mebibytes = (quantity) => {
    const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|K|M|G)?$/.exec(String(quantity ?? ""));
    if (!m) return NaN;
    const factor = { Ki: 1 / 1024, Mi: 1, Gi: 1024, K: 1e3 / 1048576, M: 1e6 / 1048576, G: 1e9 / 1048576 }[m[2]] ?? 1 / 1048576;
    return +m[1] * factor;
  };
  const limit = mebibytes(gatewayContainer?.resources?.limits?.memory);
  const policies = Object.entries(gateway.WebSocketPolicies ?? {});
  const unbounded = policies.filter(([, policy]) => !(policy.Limits?.MaxConnections > 0)).map(([name]) => name);
  const connections = policies.reduce((sum, [, policy]) => sum + (policy.Limits?.MaxConnections ?? 0), 0);
  const needed = (connections * 52) / 1024 + 256;
  if (!(limit > 0)) fail(where, "the gateway container needs resources.limits.memory");
  else if (policies.length === 0 || unbounded.length > 0) fail(where, `every WebSocket policy needs Limits:MaxConnections, or the memory limit bounds nothing (${unbounded.join(", ") || "no policy"})`);
  else if (!(needed <= 0.8 * limit)) fail(where, `MaxConnections ${connections} x 52 KB + 256 MiB = ${Math.round(needed)} MiB exceeds 80 % of the memory limit (${Math.round(limit)} MiB)`);
  if (gateway.Admin?.Address === undefined || ["127.0.0.1", "localhost", "::1"].includes(gateway.Admin.Address)) {
    fail(where, "Gateway:Admin:Address must not be loopback in a pod: the kubelet probes the pod IP");
  }
  if (containers.some((c) => c.lifecycle?.preStop) && !/preStop/.test(readFileSync(join(dir, file), "utf8").split("apiVersion")[0])) {
    fail(where, "a preStop hook needs a comment saying what it adds beyond Drain:Delay");
  }
}

if (errors.length > 0) {
  for (const e of errors) console.error(`kubernetes: ${e}`);
  console.error(`kubernetes: ${errors.length} error(s) in ${dir}`);
  process.exit(1);
}
console.log(`kubernetes: ${objects.length} objects in ${listed.length} files valid (${[...new Set(objects.map((o) => o.object.kind))].join(", ")})`);
