// Package kubernetes holds layercheck's Kubernetes manifests (kustomize
// directories: common, node-textfile, node-scrape, registry-shards,
// registry-merge, alerts; docs/kubernetes.md explains them) and, in its
// test, their check: every manifest decoded strictly with the Kubernetes API
// types (k8s.io/api, prometheus-operator's monitoring/v1), then the security
// context, read-only mounts, resources and shard arithmetic asserted.
//
// It is a module of its own so that the Kubernetes API modules, which only
// this test needs, stay out of layercheck's go.mod. It has no Go code to
// import.
package kubernetes
