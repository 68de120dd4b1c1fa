package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"deployer/onboard"

	"github.com/gofiber/fiber/v2"
)

// nodeIDParam accepts a node id as a JSON string or number.
type nodeIDParam string

func (n *nodeIDParam) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*n = nodeIDParam(strings.TrimSpace(s))
		return nil
	}
	if string(b) == "null" {
		*n = ""
		return nil
	}
	var num json.Number
	if err := json.Unmarshal(b, &num); err != nil {
		return onboard.FieldError("node_id", "Node must be a string or a whole number.")
	}
	if _, err := strconv.ParseUint(num.String(), 10, 32); err != nil {
		return onboard.FieldError("node_id", "Node %s is not a node id; use a positive whole number.", num.String())
	}
	*n = nodeIDParam(num.String())
	return nil
}

type contractJSON struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	Name string `json:"name"`
}

type deploymentJSON struct {
	State     string         `json:"state"`
	Contracts []contractJSON `json:"contracts"`
	Gateway   string         `json:"gateway"`
	Error     string         `json:"error,omitempty"`
}

type testerJSON struct {
	Username        string         `json:"username"`
	FullName        string         `json:"full_name"`
	Email           string         `json:"email"`
	Account         string         `json:"account"`
	NodeID          string         `json:"node_id"`
	Deployment      deploymentJSON `json:"deployment"`
	InstallState    string         `json:"install_state"`
	InstallError    string         `json:"install_error,omitempty"`
	CockpitURL      string         `json:"cockpit_url"`
	OneTimePassword string         `json:"one_time_password,omitempty"`
	CreatedAt       string         `json:"created_at"`
}

func newTesterJSON(t *onboard.Tester) testerJSON {
	d := t.Deployment
	contracts := make([]contractJSON, 0, len(d.Contracts))
	for _, c := range d.Contracts {
		contracts = append(contracts, contractJSON{ID: strconv.FormatInt(c.ID, 10), Kind: c.Kind, Name: c.Name})
	}
	return testerJSON{
		Username: t.Username, FullName: t.FullName, Email: t.Email, Account: t.Account, NodeID: d.NodeID,
		Deployment:   deploymentJSON{State: d.State, Contracts: contracts, Gateway: d.Gateway, Error: d.Error},
		InstallState: t.InstallState, InstallError: t.InstallError, CockpitURL: t.CockpitURL,
		CreatedAt: formatJSONTime(t.CreatedAt),
	}
}

type stageJSON struct {
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

type onboardingJSON struct {
	ID              string      `json:"id"`
	Username        string      `json:"username"`
	NodeID          string      `json:"node_id"`
	Status          string      `json:"status"`
	Attempt         int         `json:"attempt"`
	Stages          []stageJSON `json:"stages"`
	CockpitURL      string      `json:"cockpit_url"`
	Error           *errorJSON  `json:"error,omitempty"`
	StartedBy       string      `json:"started_by"`
	CreatedAt       string      `json:"created_at"`
	FinishedAt      string      `json:"finished_at,omitempty"`
	LastEventID     int64       `json:"last_event_id"`
	OneTimePassword string      `json:"one_time_password,omitempty"`
}

func newOnboardingJSON(o *onboard.Onboarding) onboardingJSON {
	j := onboardingJSON{
		ID: o.ID, Username: o.Username, NodeID: o.NodeID, Status: o.Status, Attempt: o.Attempt,
		CockpitURL: o.CockpitURL, StartedBy: o.StartedBy, CreatedAt: formatJSONTime(o.CreatedAt),
		FinishedAt: formatJSONTime(o.FinishedAt), LastEventID: o.LastSeq,
	}
	for _, s := range o.Stages {
		j.Stages = append(j.Stages, stageJSON{Name: s.Name, Status: s.Status, Message: s.Message})
	}
	if o.Status == onboard.StatusFailed || o.Status == onboard.StatusCanceled {
		j.Error = &errorJSON{Code: o.ErrorCode, Message: o.ErrorMessage}
	}
	return j
}

type capacityJSON struct {
	NodeID         string `json:"node_id"`
	Online         bool   `json:"online"`
	Reason         string `json:"reason"`
	TotalSlots     int    `json:"total_slots"`
	FreeSlots      int    `json:"free_slots"`
	ReservedSlots  int    `json:"reserved_slots"`
	RoomForTesters int    `json:"room_for_testers"`
	Degraded       bool   `json:"degraded"`
	CheckedAt      string `json:"checked_at"`
}

func newCapacityJSON(c onboard.Capacity) capacityJSON {
	return capacityJSON{
		NodeID: c.NodeID, Online: c.Online, Reason: c.Reason, TotalSlots: c.TotalSlots, FreeSlots: c.FreeSlots,
		ReservedSlots: c.ReservedSlots, RoomForTesters: c.RoomForTesters, Degraded: c.Degraded,
		CheckedAt: formatJSONTime(c.CheckedAt),
	}
}

type eventJSON struct {
	ID           int64  `json:"id"`
	OnboardingID string `json:"onboarding_id"`
	Kind         string `json:"kind"`
	Stage        string `json:"stage"`
	Status       string `json:"status"`
	Message      string `json:"message,omitempty"`
	Code         string `json:"code,omitempty"`
	TS           string `json:"ts"`
}

func newEventJSON(e onboard.Event) eventJSON {
	return eventJSON{
		ID: e.Seq, OnboardingID: e.OnboardingID, Kind: e.Kind, Stage: e.Stage, Status: e.Status, Message: e.Message, Code: e.Code,
		TS: e.Time.UTC().Format(time.RFC3339Nano),
	}
}

func formatJSONTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// parseBody reads a JSON body for the API and a form for pages into dst,
// whose fields carry both json and form tags. Unknown JSON fields are
// rejected, so that a misspelt field is not silently ignored.
func parseBody(c *fiber.Ctx, dst any) error {
	if strings.HasPrefix(c.Get(fiber.HeaderContentType), fiber.MIMEApplicationJSON) {
		body := c.Body()
		if len(bytes.TrimSpace(body)) == 0 {
			return nil
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(dst); err != nil {
			var fe *onboard.Error
			if errors.As(err, &fe) {
				return fe
			}
			return onboard.Errorf(onboard.EInvalid, "The JSON body could not be read: %s.", jsonErrorText(err))
		}
		return nil
	}
	if err := c.BodyParser(dst); err != nil {
		return onboard.Errorf(onboard.EInvalid, "The form could not be read: %v.", err)
	}
	return nil
}

// jsonErrorText shortens a decoding error to the part an admin needs.
func jsonErrorText(err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "json: ")
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return msg
}

// isAPI reports whether the request is for the JSON API.
func isAPI(c *fiber.Ctx) bool { return strings.HasPrefix(c.Path(), "/api/") }
