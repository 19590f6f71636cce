// Package api is nanohook's HTTP surface: the public API that customers call
// with their API keys (/api/v1/...) and the admin API that the generation
// platform calls with the admin token (/admin/v1/...), each an http.Handler
// built on net/http's ServeMux.
//
// Every answer, including unknown routes, wrong methods and recovered panics,
// is one JSON envelope: {"success":true,"data":...} or
// {"success":false,"error":{"code":...,"message":...,"field":...}}. Handlers
// return errors and a single function (writeError in respond.go) turns them
// into statuses, so the mapping from domain codes and storage sentinels to
// HTTP lives in one place and internal details are logged, never sent.
//
// The package knows no SQL: it declares the narrow storage interfaces its
// handlers use beside them (AccountStore, EndpointStore, PublishStore, ...),
// composed into Store, which store.Store satisfies. It takes its store,
// clock, logger and collaborators from Config so that tests control them.
package api
