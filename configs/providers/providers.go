// Package providers holds the traffic-shaping defaults Drover ships for
// the big mailbox providers (Google, Microsoft, Yahoo/AOL, Apple iCloud,
// Comcast, GMX/Web.de, Mail.ru, QQ, NetEase) and the shipped
// adaptive-backoff rules: providers.yaml, each value with its source or
// reasoning. It is data only, a folder of configs so that the shipped
// configuration lives in one place: configs decodes it (configs.LoadShipped,
// in the schema of the `shaping:` section), cmd/drover hands it to
// queue/shaping under the operator's shaping, and `drover config
// providers` prints it.
package providers

import _ "embed"

// YAML is providers.yaml, comments included.
//
//go:embed providers.yaml
var YAML []byte
