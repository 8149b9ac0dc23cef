package main

// From configuration to shaping and routes: the `shaping:` section and the
// shipped shaping defaults (configs) become a shaping.Config; the problems
// that queue/shaping and mta/resolve find in them come back as structured
// errors, each turned into the key and line of the file it came from.

import (
	"cmp"
	"errors"
	"maps"
	"math"
	"slices"

	"drover/configs"
	"drover/mta/resolve"
	"drover/queue/shaping"
)

// newShaper builds the shaping of cfg over the shipped providers and
// rules. An invalid configuration gives every problem, each naming its key
// and line ("line 3: shaping.default.max_connections: 0 is less than 1").
func newShaper(cfg *configs.Config) (*shaping.Shaper, error) {
	shipped, err := configs.LoadShipped()
	if err != nil {
		return nil, err
	}
	sc, problems := shapingConfig(&cfg.Shaping, shipped)
	s, err := shaping.New(sc)
	if err != nil {
		var found shaping.Errors
		if !errors.As(err, &found) {
			return nil, err
		}
		problems = append(problems, found...)
	}
	if len(problems) == 0 {
		return s, nil
	}
	return nil, keyErrors(cfg, shipped, problems)
}

// shapingConfig converts the operator's shaping and the shipped one. A
// rate that does not parse is left unset and reported among the problems,
// named as shaping.New names its own.
func shapingConfig(sh *configs.Shaping, shipped *configs.Shipped) (shaping.Config, shaping.Errors) {
	var problems shaping.Errors
	sc := shaping.Config{
		Default:          shapingSettings("default", &sh.Default, false, &problems),
		Providers:        shapingProviders(sh.Providers, false, &problems),
		Sites:            map[string]shaping.Settings{},
		Domains:          map[string]shaping.Settings{},
		Rules:            shapingRules(sh.Rules),
		ShippedProviders: shapingProviders(shipped.Providers, true, &problems),
		ShippedRules:     shapingRules(shipped.Rules),
	}
	for _, name := range slices.Sorted(maps.Keys(sh.Sites)) {
		st := sh.Sites[name]
		sc.Sites[name] = shapingSettings(configs.KeyPath("sites", name), &st, false, &problems)
	}
	for _, name := range slices.Sorted(maps.Keys(sh.Domains)) {
		st := sh.Domains[name]
		sc.Domains[name] = shapingSettings(configs.KeyPath("domains", name), &st, false, &problems)
	}
	return sc, problems
}

func shapingProviders(in map[string]configs.ShapingProvider, shipped bool, problems *shaping.Errors) map[string]shaping.Provider {
	out := make(map[string]shaping.Provider, len(in))
	for _, name := range slices.Sorted(maps.Keys(in)) {
		p := in[name]
		out[name] = shaping.Provider{
			MX:       p.MX,
			Settings: shapingSettings(configs.KeyPath("providers", name), &p.ShapingSettings, shipped, problems),
		}
	}
	return out
}

// shapingSettings converts the settings at path (relative to the shaping
// section). shaping.New copies what it keeps, so the pointers are shared.
func shapingSettings(path string, s *configs.ShapingSettings, shipped bool, problems *shaping.Errors) shaping.Settings {
	rate := func(key string, v *string) *shaping.Rate {
		if v == nil {
			return nil
		}
		r, err := shaping.ParseRate(*v)
		if err != nil {
			*problems = append(*problems, &shaping.Error{Path: path + "." + key, Shipped: shipped, Msg: err.Error()})
			return nil
		}
		return &r
	}
	return shaping.Settings{
		MaxConnections:           s.MaxConnections,
		MaxMessagesPerConnection: s.MaxMessagesPerConnection,
		MaxRecipientsPerMessage:  s.MaxRecipientsPerMessage,
		MaxMessageRate:           rate("max_message_rate", s.MaxMessageRate),
		MaxConnectionRate:        rate("max_connection_rate", s.MaxConnectionRate),
		RetryInterval:            s.RetryInterval,
		MaxRetryInterval:         s.MaxRetryInterval,
		MaxAge:                   s.MaxAge,
		TLS:                      s.TLS,
		Pool:                     s.Pool,
	}
}

func shapingRules(in []configs.ShapingRule) []shaping.Rule {
	out := make([]shaping.Rule, len(in))
	for i, r := range in {
		out[i] = shaping.Rule{
			Name:     r.Name,
			Pattern:  r.Pattern,
			Status:   r.Status,
			Code:     r.Code,
			Action:   r.Action,
			Factor:   r.Factor,
			Duration: r.Duration,
		}
	}
	return out
}

// keyErrors turns shaping problems into errors naming the key and line of
// the operator's file, or of the shipped file for a shipped entry.
func keyErrors(cfg *configs.Config, shipped *configs.Shipped, problems shaping.Errors) error {
	errs := make([]error, 0, len(problems))
	for _, p := range problems {
		if p.Shipped {
			errs = append(errs, shipped.ErrorAt(p.Path, p.Msg))
		} else {
			errs = append(errs, cfg.ErrorAt("shaping."+p.Path, p.Msg))
		}
	}
	return byLine(errs...)
}

// byLine joins the problems of a configuration in the order of their
// lines: the operator's file first (keys without a line last), then the
// shipped file, then errors that name no key. A joined error among errs
// is taken apart.
func byLine(errs ...error) error {
	var all []error
	for _, err := range errs {
		if err != nil {
			all = append(all, unjoin(err)...)
		}
	}
	rank := func(err error) (file, line int) {
		var ke *configs.KeyError
		switch {
		case !errors.As(err, &ke):
			return 2, 0
		case ke.File != "":
			file = 1
		}
		if line = ke.Line; line == 0 {
			line = math.MaxInt
		}
		return file, line
	}
	slices.SortStableFunc(all, func(a, b error) int {
		fa, la := rank(a)
		fb, lb := rank(b)
		return cmp.Or(cmp.Compare(fa, fb), cmp.Compare(la, lb))
	})
	return errors.Join(all...)
}

// newRoutes builds the routes of cfg; each bad route is reported with its
// key and line ("line 2: routes.*.test: target ...").
func newRoutes(cfg *configs.Config) (*resolve.Routes, error) {
	routes, err := resolve.NewRoutes(cfg.Routes)
	if err == nil {
		return routes, nil
	}
	var errs []error
	for _, e := range unjoin(err) {
		var re *resolve.RouteError
		if errors.As(e, &re) {
			e = cfg.ErrorAt(configs.KeyPath("routes", re.Pattern), re.Msg)
		}
		errs = append(errs, e)
	}
	return nil, byLine(errs...)
}

// unjoin returns the errors a joined error holds, or err alone.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
