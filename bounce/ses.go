package bounce

import (
	"encoding/json"
	"strings"
)

// sesEvent is an Amazon SES notification (bounce, complaint, delivery),
// bare or inside an SNS envelope.
type sesEvent struct {
	Type             string `json:"Type"`
	Message          string `json:"Message"`
	NotificationType string `json:"notificationType"`
	EventType        string `json:"eventType"`
	Bounce           *struct {
		BounceType        string `json:"bounceType"`
		BounceSubType     string `json:"bounceSubType"`
		ReportingMTA      string `json:"reportingMTA"`
		RemoteMtaIP       string `json:"remoteMtaIp"`
		BouncedRecipients []struct {
			EmailAddress   string `json:"emailAddress"`
			Action         string `json:"action"`
			Status         string `json:"status"`
			DiagnosticCode string `json:"diagnosticCode"`
		} `json:"bouncedRecipients"`
	} `json:"bounce"`
	Complaint *struct {
		ComplaintFeedbackType string `json:"complaintFeedbackType"`
		ComplainedRecipients  []struct {
			EmailAddress string `json:"emailAddress"`
		} `json:"complainedRecipients"`
	} `json:"complaint"`
	Delivery *struct {
		Recipients   []string `json:"recipients"`
		SMTPResponse string   `json:"smtpResponse"`
		ReportingMTA string   `json:"reportingMTA"`
	} `json:"delivery"`
	Mail struct {
		MessageID string `json:"messageId"`
	} `json:"mail"`
}

// sesSubType maps SES bounce sub-types that name a reason.
var sesSubType = map[string]string{
	"NoEmail":                  "userunknown",
	"Suppressed":               "suppressed",
	"OnAccountSuppressionList": "suppressed",
	"MailboxFull":              "mailboxfull",
	"MessageTooLarge":          "mesgtoobig",
	"ContentRejected":          "contenterror",
	"AttachmentRejected":       "policyviolation",
}

// sesRecords reads an Amazon SES notification in the body of m.
func (m *message) sesRecords() []record {
	if len(m.texts) == 0 {
		return nil
	}
	body := m.texts[0]
	i := strings.IndexByte(body, '{')
	j := strings.LastIndexByte(body, '}')
	if i < 0 || j < i || !strings.Contains(body, "notificationType") && !strings.Contains(body, "eventType") {
		return nil
	}
	// Lines longer than SMTP allows were folded as "!" LF SP on the way.
	js := strings.ReplaceAll(body[i:j+1], "!\n ", "")
	var ev sesEvent
	if err := json.Unmarshal([]byte(js), &ev); err != nil {
		return nil
	}
	if ev.Message != "" {
		var inner sesEvent
		if err := json.Unmarshal([]byte(ev.Message), &inner); err != nil {
			return nil
		}
		ev = inner
	}
	if m.origMessageID == "" {
		m.origMessageID = ev.Mail.MessageID
	}
	kind := ev.NotificationType
	if kind == "" {
		kind = ev.EventType
	}
	var recs []record
	switch {
	case kind == "Bounce" && ev.Bounce != nil:
		m.reportingMTA = stripType(ev.Bounce.ReportingMTA)
		for _, r := range ev.Bounce.BouncedRecipients {
			diag := r.DiagnosticCode
			if t, v, ok := strings.Cut(diag, ";"); ok && !strings.Contains(t, " ") {
				diag = strings.TrimSpace(v)
			}
			rec := record{recipient: r.EmailAddress, status: r.Status, diag: diag, action: strings.ToLower(r.Action), remoteMTA: ev.Bounce.RemoteMtaIP}
			if r.Status == "" && diag == "" {
				rec.reason = sesSubType[ev.Bounce.BounceSubType]
			}
			if rec.action == "" && ev.Bounce.BounceType == "Transient" {
				rec.action = "delayed"
			}
			recs = append(recs, rec)
		}
	case kind == "Complaint" && ev.Complaint != nil:
		ft := strings.ToLower(ev.Complaint.ComplaintFeedbackType)
		if ft == "" {
			ft = "abuse"
		}
		for _, r := range ev.Complaint.ComplainedRecipients {
			recs = append(recs, record{recipient: r.EmailAddress, reason: "feedback", feedbackType: ft})
		}
	case kind == "Delivery" && ev.Delivery != nil:
		m.reportingMTA = ev.Delivery.ReportingMTA
		for _, a := range ev.Delivery.Recipients {
			st := findStatus(ev.Delivery.SMTPResponse)
			if st == "" {
				st = "2.0.0"
			}
			recs = append(recs, record{recipient: a, status: st, diag: ev.Delivery.SMTPResponse, action: "delivered"})
		}
	}
	return recs
}
