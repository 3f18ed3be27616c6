package connect

import (
	"fmt"
	"sort"

	consul "github.com/hashicorp/consul/api"
)

// Intentions maps each destination service to the services allowed to call it; any
// other caller is denied.
type Intentions map[string][]string

// Apply writes one service-intentions config entry per destination: the allowed
// sources, then a wildcard deny, so a new service calls nothing until it is listed
// (Consul's default, with ACLs off as in a dev agent, would allow it).
func (in Intentions) Apply(c *consul.Client) error {
	for dest, sources := range in {
		entry := &consul.ServiceIntentionsConfigEntry{
			Kind: consul.ServiceIntentions,
			Name: dest,
			Meta: map[string]string{"managed-by": "kitshop"},
		}
		sorted := append([]string(nil), sources...)
		sort.Strings(sorted)
		for _, s := range sorted {
			entry.Sources = append(entry.Sources, &consul.SourceIntention{Name: s, Action: consul.IntentionActionAllow, Type: consul.IntentionSourceConsul})
		}
		entry.Sources = append(entry.Sources, &consul.SourceIntention{Name: "*", Action: consul.IntentionActionDeny, Type: consul.IntentionSourceConsul})
		if _, _, err := c.ConfigEntries().Set(entry, nil); err != nil {
			return fmt.Errorf("connect: intentions of %s: %w", dest, err)
		}
	}
	return nil
}
