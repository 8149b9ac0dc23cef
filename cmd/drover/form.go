package main

import (
	"errors"
	"fmt"
	"html/template"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"drover/configs"
	"drover/web"
)

// signupForm is the sign-up form a web page embeds: it posts to the web
// listener's hosted endpoint. The consent checkbox is not ticked (an
// affirmative act is required), its label is the consent text the list
// records, linked to the sender's privacy policy.
var signupForm = template.Must(template.New("form").Parse(`<form method="post" action="{{.Action}}" accept-charset="utf-8">
  <p>
    <label for="drover-email">Email address</label>
    <input id="drover-email" name="email" type="email" autocomplete="email" required>
  </p>
  <p>
    <input id="drover-consent" name="consent" type="checkbox" value="yes" required>
    <label for="drover-consent">{{.Text}}{{with .Privacy}} <a href="{{.}}">Privacy policy</a>{{end}}</label>
  </p>
  <p><button type="submit">Subscribe</button></p>
</form>
`))

func newFormCmd() *cobra.Command {
	var cfgPath, sender, list string
	form := &cobra.Command{Use: "form", Short: "Sign-up forms for the web listener's hosted endpoint"}
	html := &cobra.Command{
		Use:   "html --sender S --list L",
		Short: "Print a sign-up form a web page can embed (consent checkbox unticked, linking to the privacy policy)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := configs.Load(cfgPath)
			if err != nil {
				return err
			}
			s := cfg.Senders[sender]
			if s == nil {
				return fmt.Errorf("no sender named %q in the configuration", sender)
			}
			l := s.Signup[list]
			if l == nil {
				return fmt.Errorf("sender %s has no list %q in signup: (senders.%s.signup)", sender, list, sender)
			}
			if cfg.Web.BaseURL == "" {
				return errors.New("web.base_url is empty: the form needs the public address of the web listener")
			}
			return signupForm.Execute(cmd.OutOrStdout(), map[string]string{
				"Action":  strings.TrimRight(cfg.Web.BaseURL, "/") + web.SignupPath + url.PathEscape(sender) + "/" + url.PathEscape(list),
				"Text":    l.ConsentText,
				"Privacy": s.PrivacyPolicyURL,
			})
		},
	}
	html.Flags().StringVarP(&cfgPath, "config", "c", "", "configuration file (default: the embedded default)")
	html.Flags().StringVar(&sender, "sender", "", "the sender")
	html.Flags().StringVar(&list, "list", "", "the list (one of the sender's signup lists)")
	html.MarkFlagRequired("sender")
	html.MarkFlagRequired("list")
	form.AddCommand(html)
	return form
}
