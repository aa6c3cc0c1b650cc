// Package schedule runs an audit again and again: audit, publish the result,
// wait, repeat, until the context is cancelled. It is what
// `layercheck host --interval` runs; a DaemonSet's pod lives in it.
//
// A failed audit is a result like any other: it is published (the metrics
// say the round did not complete) and the loop goes on, so a damaged or
// unreadable store never turns into a crash loop. Run knows nothing of
// stores, reports or metrics: the caller's audit and publish functions do.
// It is not a cron: rounds never overlap, and the wait is counted from the
// end of one round to the start of the next.
package schedule
