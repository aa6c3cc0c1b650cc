package kubernetes

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// unmarshalStrict decodes YAML as the API server decodes a manifest sent
// with fieldValidation=Strict: field names matched case-sensitively (Go's
// encoding/json, under sigs.k8s.io/yaml.UnmarshalStrict, is not), unknown
// and duplicate fields refused.
func unmarshalStrict(doc []byte, v any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strict, err := sigsjson.UnmarshalStrict(j, v, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// kustomization is the part of kustomize's Kustomization these directories
// use; decoded strictly like the rest, so a field outside it is noticed.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	} `json:"images"`
}

// object is a decoded manifest with where it came from.
type object struct {
	file string
	obj  any
}

// newObject returns the API type of a manifest's apiVersion and kind.
func newObject(apiVersion, kind string) (any, bool) {
	switch apiVersion + " " + kind {
	case "v1 Namespace":
		return &corev1.Namespace{}, true
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, true
	case "v1 Service":
		return &corev1.Service{}, true
	case "v1 PersistentVolumeClaim":
		return &corev1.PersistentVolumeClaim{}, true
	case "apps/v1 DaemonSet":
		return &appsv1.DaemonSet{}, true
	case "batch/v1 Job":
		return &batchv1.Job{}, true
	case "scheduling.k8s.io/v1 PriorityClass":
		return &schedulingv1.PriorityClass{}, true
	case "monitoring.coreos.com/v1 PodMonitor":
		return &monitoringv1.PodMonitor{}, true
	case "monitoring.coreos.com/v1 PrometheusRule":
		return &monitoringv1.PrometheusRule{}, true
	}
	return nil, false
}

// load decodes every manifest of a kustomize directory, strictly, and
// checks that the kustomization lists exactly the directory's manifests.
func load(t *testing.T, dir string) []object {
	t.Helper()
	var k kustomization
	decodeStrict(t, filepath.Join(dir, "kustomization.yaml"), &k)
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Errorf("%s/kustomization.yaml: %s %s", dir, k.APIVersion, k.Kind)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	var own []string
	var out []object
	for _, r := range k.Resources {
		p := filepath.Join(dir, r)
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("%s: resource %s: %v", dir, r, err)
			continue
		}
		if fi.IsDir() {
			out = append(out, load(t, p)...)
			continue
		}
		own = append(own, p)
	}
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		if !slices.Contains(own, f) {
			t.Errorf("%s is not listed in %s/kustomization.yaml", f, dir)
		}
	}
	for _, f := range own {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range bytes.Split(b, []byte("\n---\n")) {
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s document %d: %v", f, i+1, err)
			}
			obj, ok := newObject(tm.APIVersion, tm.Kind)
			if !ok {
				t.Errorf("%s document %d: %s %s is not a kind this test knows", f, i+1, tm.APIVersion, tm.Kind)
				continue
			}
			if err := unmarshalStrict(doc, obj); err != nil {
				t.Errorf("%s document %d: %v", f, i+1, err)
				continue
			}
			out = append(out, object{f, obj})
		}
	}
	return out
}

func decodeStrict(t *testing.T, file string, v any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := unmarshalStrict(b, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

func only[T any](t *testing.T, objs []object) T {
	t.Helper()
	var found []T
	for _, o := range objs {
		if v, ok := o.obj.(T); ok {
			found = append(found, v)
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("%d objects of type %T, want 1", len(found), zero)
	}
	return found[0]
}

// TestStrictDecodingRefusesUnknownFields: the decoder this test relies on
// refuses a misspelt field (readonly for readOnly, which a case-insensitive
// decoder would take), an unknown one and a duplicate.
func TestStrictDecodingRefusesUnknownFields(t *testing.T) {
	const head = "apiVersion: apps/v1\nkind: DaemonSet\nspec:\n  template:\n    spec:\n      containers:\n        - name: x\n          volumeMounts:\n            - name: v\n              mountPath: /v\n"
	for field, doc := range map[string]string{
		"readonly":    head + "              readonly: true\n",
		"readOnlyAll": head + "              readOnlyAll: true\n",
		"mountPath":   head + "              mountPath: /w\n",
	} {
		var ds appsv1.DaemonSet
		if err := unmarshalStrict([]byte(doc), &ds); err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("strict decoding with field %s = %v, want an error naming it", field, err)
		}
	}
	var ds appsv1.DaemonSet
	if err := unmarshalStrict([]byte(head), &ds); err != nil {
		t.Errorf("strict decoding of a valid document: %v", err)
	}
}

var storePaths = []string{"/var/lib/docker", "/var/lib/containerd", "/var/lib/containers/storage"}

// peakRSS is the highest peak RSS BENCHMARKS.md records for an audit or a
// verification (46 MiB for remote, 20-30 MiB for host and layout): the
// requests and limits must leave room above it.
var peakRSS = resource.MustParse("64Mi")

func TestNodeAudit(t *testing.T) {
	for _, variant := range []string{"node-textfile", "node-scrape"} {
		t.Run(variant, func(t *testing.T) {
			objs := load(t, variant)
			ds := only[*appsv1.DaemonSet](t, objs)
			pc := only[*schedulingv1.PriorityClass](t, objs)
			ns := only[*corev1.Namespace](t, objs)
			pod := ds.Spec.Template.Spec
			if ds.Namespace != ns.Name {
				t.Errorf("DaemonSet in namespace %q, the kustomization creates %q", ds.Namespace, ns.Name)
			}
			if !labelsMatch(ds.Spec.Selector.MatchLabels, ds.Spec.Template.Labels) {
				t.Error("the DaemonSet's selector does not select its pods")
			}

			// Low priority: below the default 0, never preempting.
			if pod.PriorityClassName != pc.Name || pc.Value >= 0 || pc.GlobalDefault || pc.PreemptionPolicy == nil || *pc.PreemptionPolicy != corev1.PreemptNever {
				t.Errorf("priority: class %q (value %d, global %v, preemption %v), pod uses %q", pc.Name, pc.Value, pc.GlobalDefault, pc.PreemptionPolicy, pod.PriorityClassName)
			}
			if pod.HostNetwork || pod.HostPID || pod.HostIPC {
				t.Error("the pod shares a host namespace")
			}
			if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
				t.Error("the audit needs no API access: automountServiceAccountToken must be false")
			}

			// Root, not privileged, only DAC_READ_SEARCH.
			psc := pod.SecurityContext
			if psc == nil || psc.RunAsUser == nil || *psc.RunAsUser != 0 || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("pod securityContext %+v: want runAsUser 0 and the RuntimeDefault seccomp profile", psc)
			}
			if len(pod.Containers) != 1 || len(pod.InitContainers) != 0 {
				t.Fatalf("%d containers, %d init containers; want one container", len(pod.Containers), len(pod.InitContainers))
			}
			c := pod.Containers[0]
			checkContainerSecurity(t, c, []corev1.Capability{"DAC_READ_SEARCH"})

			// Every host path is mounted read-only, the stores at their own
			// paths (the default roots of layercheck host); only the
			// textfile directory is writable.
			hostPaths := map[string]string{} // volume name -> host path
			for _, v := range pod.Volumes {
				if v.HostPath != nil {
					hostPaths[v.Name] = v.HostPath.Path
				}
			}
			mounted := map[string]corev1.VolumeMount{}
			for _, m := range c.VolumeMounts {
				hp, ok := hostPaths[m.Name]
				if !ok {
					continue
				}
				mounted[hp] = m
				if m.MountPropagation != nil && *m.MountPropagation != corev1.MountPropagationNone {
					t.Errorf("mount %s: propagation %s", m.MountPath, *m.MountPropagation)
				}
				if m.MountPath == "/textfile" && variant == "node-textfile" {
					if m.ReadOnly {
						t.Error("the textfile directory must be writable")
					}
					continue
				}
				if !m.ReadOnly || m.RecursiveReadOnly == nil || *m.RecursiveReadOnly != corev1.RecursiveReadOnlyIfPossible {
					rro := "unset"
					if m.RecursiveReadOnly != nil {
						rro = string(*m.RecursiveReadOnly)
					}
					t.Errorf("host path %s mounted at %s: readOnly %v, recursiveReadOnly %s; want read-only, recursively where the node can", hp, m.MountPath, m.ReadOnly, rro)
				}
			}
			for _, p := range storePaths {
				m, ok := mounted[p]
				if !ok || m.MountPath != p {
					t.Errorf("store %s: mounted at %q, want at its own path", p, m.MountPath)
				}
			}
			wantHostPaths := len(storePaths)
			if variant == "node-textfile" {
				wantHostPaths++
			}
			if len(hostPaths) != wantHostPaths || len(mounted) != wantHostPaths {
				t.Errorf("host paths %v (%d mounted), want the stores%s", hostPaths, len(mounted), map[bool]string{true: " and the textfile directory"}[variant == "node-textfile"])
			}
			checkWritableTmp(t, pod, c)
			checkResources(t, c, resource.MustParse("1"))

			// What layercheck runs.
			args := c.Args
			if len(args) == 0 || args[0] != "host" || !slices.Contains(args, "--interval=6h") || !slices.Contains(args, "--jobs=2") {
				t.Errorf("args %q: want host --interval=6h --jobs=2", args)
			}
			switch variant {
			case "node-textfile":
				i := slices.Index(args, "-o")
				if i < 0 || i+1 >= len(args) || args[i+1] != "prometheus=/textfile/layercheck.prom" {
					t.Errorf("args %q: want -o prometheus=/textfile/layercheck.prom", args)
				}
				if len(c.Ports) != 0 || c.LivenessProbe != nil {
					t.Error("the textfile variant serves nothing")
				}
			case "node-scrape":
				if !slices.Contains(args, "--metrics-listen=:9090") || slices.Contains(args, "-o") {
					t.Errorf("args %q: want --metrics-listen=:9090 and no file output", args)
				}
				if len(c.Ports) != 1 || c.Ports[0].Name != "metrics" || c.Ports[0].ContainerPort != 9090 {
					t.Errorf("ports %+v: want metrics 9090", c.Ports)
				}
				lp := c.LivenessProbe
				if lp == nil || lp.HTTPGet == nil || lp.HTTPGet.Path != "/healthz" || lp.HTTPGet.Port.String() != "metrics" {
					t.Errorf("liveness probe %+v: want GET /healthz on metrics", lp)
				}
				svc := only[*corev1.Service](t, objs)
				if svc.Spec.ClusterIP != corev1.ClusterIPNone || !labelsMatch(svc.Spec.Selector, ds.Spec.Template.Labels) ||
					len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort.String() != "metrics" {
					t.Errorf("service %+v: want headless, selecting the pods, to port metrics", svc.Spec)
				}
				pm := only[*monitoringv1.PodMonitor](t, objs)
				if !labelsMatch(pm.Spec.Selector.MatchLabels, ds.Spec.Template.Labels) || len(pm.Spec.PodMetricsEndpoints) != 1 ||
					pm.Spec.PodMetricsEndpoints[0].Port == nil || *pm.Spec.PodMetricsEndpoints[0].Port != "metrics" {
					t.Errorf("podmonitor %+v: want the pods' metrics port", pm.Spec)
				}
				ep := pm.Spec.PodMetricsEndpoints[0]
				if len(ep.RelabelConfigs) != 1 || ep.RelabelConfigs[0].TargetLabel != "node" {
					t.Errorf("podmonitor relabelings %+v: want the node name as label node (the alerts use it)", ep.RelabelConfigs)
				}
			}
		})
	}
}

func checkContainerSecurity(t *testing.T, c corev1.Container, add []corev1.Capability) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil {
		t.Fatalf("container %s has no securityContext", c.Name)
	}
	if sc.Privileged == nil || *sc.Privileged {
		t.Error("privileged must be false, and said so")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation must be false")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("readOnlyRootFilesystem must be true")
	}
	if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || !slices.Equal(sc.Capabilities.Add, add) {
		t.Errorf("capabilities %+v: want drop ALL, add %v", sc.Capabilities, add)
	}
}

// checkWritableTmp: with a read-only root, /tmp (private copies of locked
// databases) is a size-limited emptyDir.
func checkWritableTmp(t *testing.T, pod corev1.PodSpec, c corev1.Container) {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if m.MountPath != "/tmp" {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name == m.Name && v.EmptyDir != nil && v.EmptyDir.SizeLimit != nil {
				return
			}
		}
	}
	t.Error("/tmp is not a size-limited emptyDir")
}

// checkResources: requests and limits for CPU and memory; the memory request
// covers the benchmarks' peak RSS and the limit leaves twice that again;
// GOMEMLIMIT follows the limit.
func checkResources(t *testing.T, c corev1.Container, maxCPU resource.Quantity) {
	t.Helper()
	r := c.Resources
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, lim := r.Requests[name], r.Limits[name]
		if req.IsZero() || lim.IsZero() || req.Cmp(lim) > 0 {
			t.Errorf("%s: request %s, limit %s", name, req.String(), lim.String())
		}
	}
	if mem := r.Requests[corev1.ResourceMemory]; mem.Cmp(peakRSS) < 0 {
		t.Errorf("memory request %s is below the benchmarks' peak RSS %s", mem.String(), peakRSS.String())
	}
	twice := peakRSS.DeepCopy()
	twice.Add(peakRSS)
	if mem := r.Limits[corev1.ResourceMemory]; mem.Cmp(twice) < 0 {
		t.Errorf("memory limit %s leaves no room above the peak RSS %s", mem.String(), peakRSS.String())
	}
	if cpu := r.Limits[corev1.ResourceCPU]; cpu.Cmp(maxCPU) > 0 {
		t.Errorf("CPU limit %s above %s", cpu.String(), maxCPU.String())
	}
	for _, e := range c.Env {
		if e.Name == "GOMEMLIMIT" && e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil && e.ValueFrom.ResourceFieldRef.Resource == "limits.memory" {
			return
		}
	}
	t.Error("GOMEMLIMIT does not follow limits.memory")
}

func labelsMatch(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// expand substitutes $(NAME) as the kubelet does in args.
func expand(s string, env map[string]string) string {
	return regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`).ReplaceAllStringFunc(s, func(m string) string {
		if v, ok := env[m[2:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

// flagValue returns the value of --name=VALUE in args.
func flagValue(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// shardOf parses --shard I/N with --shard-base (the first I, 0 or 1) into
// layercheck's 1-based index, refusing what layercheck refuses.
func shardOf(t *testing.T, args []string) (index, count int) {
	t.Helper()
	s, ok := flagValue(args, "shard")
	if !ok {
		t.Fatalf("args %q: no --shard", args)
	}
	base := 1
	if b, ok := flagValue(args, "shard-base"); ok {
		var err error
		if base, err = strconv.Atoi(b); err != nil || (base != 0 && base != 1) {
			t.Fatalf("--shard-base=%s: want 0 or 1", b)
		}
	}
	is, ns, _ := strings.Cut(s, "/")
	i, ierr := strconv.Atoi(is)
	n, nerr := strconv.Atoi(ns)
	if ierr != nil || nerr != nil {
		t.Fatalf("--shard=%s after substitution: not I/N", s)
	}
	i += 1 - base
	if n < 1 || i < 1 || i > n {
		t.Fatalf("--shard=%s (base %d) is shard %d of %d: out of range", s, base, i, n)
	}
	return i, n
}

// TestRegistryShards: each index of the indexed Job verifies its own shard,
// the shards cover 1..N once, their reports have distinct names, and the
// merge Job joins exactly those reports.
func TestRegistryShards(t *testing.T) {
	objs := load(t, "registry-shards")
	job := only[*batchv1.Job](t, objs)
	cm := only[*corev1.ConfigMap](t, objs)
	pvc := only[*corev1.PersistentVolumeClaim](t, objs)
	spec := job.Spec
	if spec.CompletionMode == nil || *spec.CompletionMode != batchv1.IndexedCompletion || spec.Completions == nil || spec.Parallelism == nil {
		t.Fatalf("job %s: want an indexed Job with completions and parallelism", job.Name)
	}
	n := int(*spec.Completions)
	if int(*spec.Parallelism) > n || spec.BackoffLimitPerIndex == nil {
		t.Errorf("parallelism %d of %d completions, backoffLimitPerIndex %v", *spec.Parallelism, n, spec.BackoffLimitPerIndex)
	}
	pod := spec.Template.Spec
	if pod.RestartPolicy != corev1.RestartPolicyNever || len(pod.Containers) != 1 {
		t.Fatalf("pod: restartPolicy %s, %d containers", pod.RestartPolicy, len(pod.Containers))
	}
	c := pod.Containers[0]
	if psc := pod.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Error("the registry shards need no root: runAsNonRoot with a non-zero user")
	}
	checkContainerSecurity(t, c, nil)
	checkWritableTmp(t, pod, c)
	checkResources(t, c, resource.MustParse("2"))
	if c.Args[0] != "remote" || !slices.Equal(c.Args[1:3], []string{"-f", "/refs/refs.txt"}) {
		t.Errorf("args %q: want remote -f /refs/refs.txt", c.Args)
	}
	if _, ok := cm.Data["refs.txt"]; !ok {
		t.Error("the ConfigMap has no refs.txt")
	}
	if !slices.Contains(pvc.Spec.AccessModes, corev1.ReadWriteMany) {
		t.Error("parallel shards on several nodes need a ReadWriteMany claim")
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m
	}
	if !mounts["/refs"].ReadOnly || mounts["/out"].ReadOnly {
		t.Error("want /refs read-only and /out writable")
	}

	// The arithmetic, index by index, as the kubelet substitutes it.
	seen := map[int]bool{}
	var outputs []string
	for k := 0; k < n; k++ {
		env := map[string]string{"JOB_COMPLETION_INDEX": strconv.Itoa(k)}
		var args []string
		for _, a := range c.Args {
			args = append(args, expand(a, env))
		}
		i, count := shardOf(t, args)
		if count != n {
			t.Errorf("index %d: --shard of %d, the Job has %d completions", k, count, n)
		}
		if i != k+1 {
			t.Errorf("index %d verifies shard %d, want %d", k, i, k+1)
		}
		seen[i] = true
		j := slices.Index(args, "-o")
		if j < 0 || j+1 >= len(args) || !strings.HasPrefix(args[j+1], "json=/out/") {
			t.Fatalf("index %d: args %q: want -o json=/out/…", k, args)
		}
		outputs = append(outputs, strings.TrimPrefix(args[j+1], "json="))
	}
	if len(seen) != n {
		t.Errorf("the indexes verify shards %v, want 1..%d once each", seen, n)
	}
	if sorted := slices.Compact(slices.Sorted(slices.Values(outputs))); len(sorted) != n {
		t.Errorf("shard reports %v are not distinct", outputs)
	}

	// Every reference lands in exactly one shard (layercheck's rule: the
	// sorted inputs, every N-th from position I).
	refs := make([]string, 103)
	for i := range refs {
		refs[i] = fmt.Sprintf("registry.example/app:%03d", i)
	}
	count := map[string]int{}
	for i := 1; i <= n; i++ {
		sorted := slices.Sorted(slices.Values(refs))
		for k := i - 1; k < len(sorted); k += n {
			count[sorted[k]]++
		}
	}
	for _, r := range refs {
		if count[r] != 1 {
			t.Errorf("%s is in %d shards", r, count[r])
		}
	}

	// The merge joins exactly the shard reports.
	merge := only[*batchv1.Job](t, load(t, "registry-merge"))
	mc := merge.Spec.Template.Spec.Containers[0]
	if mc.Args[0] != "merge" {
		t.Fatalf("merge args %q", mc.Args)
	}
	var inputs []string
	for _, a := range mc.Args[1:] {
		if strings.HasPrefix(a, "-") {
			break
		}
		inputs = append(inputs, a)
	}
	sort.Strings(inputs)
	sort.Strings(outputs)
	if !slices.Equal(inputs, outputs) {
		t.Errorf("merge reads %v, the shards write %v", inputs, outputs)
	}
	if v := merge.Spec.Template.Spec.Volumes; len(v) != 1 || v[0].PersistentVolumeClaim == nil || v[0].PersistentVolumeClaim.ClaimName != pvc.Name {
		t.Errorf("merge volumes %+v: want the shards' claim %s", v, pvc.Name)
	}
	checkContainerSecurity(t, mc, nil)
}

// TestAlerts: the rules use only metrics layercheck exposes (as
// docs/kubernetes.md lists them; report/metrics' test holds that list to
// the code) and each has a summary and a severity.
func TestAlerts(t *testing.T) {
	rule := only[*monitoringv1.PrometheusRule](t, load(t, "alerts"))
	docs, err := os.ReadFile(filepath.Join("..", "..", "docs", "kubernetes.md"))
	if err != nil {
		t.Fatal(err)
	}
	metric := regexp.MustCompile(`layercheck_[a-z_]+`)
	n := 0
	for _, g := range rule.Spec.Groups {
		for _, r := range g.Rules {
			n++
			expr := r.Expr.String()
			names := metric.FindAllString(expr, -1)
			if len(names) == 0 {
				t.Errorf("alert %s uses no layercheck metric: %s", r.Alert, expr)
			}
			for _, m := range names {
				if !bytes.Contains(docs, []byte("`"+m+"`")) {
					t.Errorf("alert %s uses %s, which docs/kubernetes.md does not list", r.Alert, m)
				}
			}
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s: want a severity label, a summary and a description", r.Alert)
			}
			if !bytes.Contains(docs, []byte(r.Alert)) {
				t.Errorf("docs/kubernetes.md does not explain alert %s", r.Alert)
			}
		}
	}
	if n == 0 {
		t.Fatal("no alert rules")
	}
}
