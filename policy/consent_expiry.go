package policy

// ExpireConsents removes what is no longer needed, by the policy clock:
// a sign-up pending (never confirmed) for longer than Config.PendingTTL,
// whose history holds nothing else, is deleted (there is no consent to
// prove, and the address was never confirmed to belong to whoever gave
// it); the history of a consent withdrawn or lapsed longer than
// Config.ProofRetention ago is deleted (the proof has been kept as long
// as it was configured to be). A zero duration keeps them. The run loop
// calls it hourly; it returns how many histories it deleted.
func (p *Policy) ExpireConsents() (pending, ended int, err error) {
	ttl, keep := p.cfg.PendingTTL, p.cfg.ProofRetention
	if ttl <= 0 && keep <= 0 {
		return 0, 0, nil
	}
	now := p.cfg.Now()
	var due []ConsentHead
	err = p.cfg.Store.ScanConsent(Any, Any, "", "", func(h ConsentHead) error {
		if (h.Status == ConsentPending && ttl > 0) || ((h.Status == ConsentWithdrawn || h.Status == ConsentLapsed) && keep > 0) {
			due = append(due, h)
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	for _, h := range due {
		c, ok, err := p.cfg.Store.ConsentRecord(h.Sender, h.List, h.Address, h.Seq)
		if err != nil {
			return pending, ended, err
		}
		if !ok {
			continue
		}
		switch h.Status {
		case ConsentPending:
			if h.Seq != 1 || now.Sub(c.Recorded) <= ttl {
				continue // a history with more than the sign-up stays
			}
			pending++
		default:
			if now.Sub(c.Recorded) <= keep {
				continue
			}
			ended++
		}
		if err := p.cfg.Store.DeleteConsent(h.Sender, h.List, h.Address); err != nil {
			return pending, ended, err
		}
	}
	if pending+ended > 0 {
		p.cfg.Logger.Info("policy: expired consent records deleted", "pending", pending, "ended", ended)
	}
	return pending, ended, nil
}
