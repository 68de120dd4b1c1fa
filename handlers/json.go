package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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

// defaultFieldMax is the length limit in bytes of a string field without a
// maxlen tag.
const defaultFieldMax = 256

// parseBody reads a JSON body or a form into dst, whose fields carry json
// and form tags, and checks each string field against its maxlen tag. Unknown
// JSON fields and data after the JSON value are rejected, so that a
// misspelt field is not silently ignored. It returns EInvalid, naming the
// field where there is one.
func parseBody(c *fiber.Ctx, dst any) error {
	body := c.Body()
	mediaType, _, _ := strings.Cut(c.Get(fiber.HeaderContentType), ";")
	mediaType = strings.ToLower(strings.TrimSpace(mediaType))
	switch {
	case mediaType == fiber.MIMEApplicationJSON:
		if err := checkJSONKeys(body, dst); err != nil {
			return err
		}
		if err := decodeJSON(body, dst); err != nil {
			return err
		}
	case mediaType == fiber.MIMEApplicationForm || mediaType == fiber.MIMEMultipartForm:
		if err := checkFormValues(c); err != nil {
			return err
		}
		if err := checkFormIntegers(c, dst); err != nil {
			return err
		}
		if err := c.BodyParser(dst); err != nil {
			return onboard.Errorf(onboard.EInvalid, "The form could not be read: %s.", clip(err.Error(), 200))
		}
	case len(bytes.TrimSpace(body)) > 0:
		return onboard.Errorf(onboard.EInvalid,
			"The request body has content type %q; send JSON with Content-Type: application/json, or a form.",
			clip(mediaType, 100))
	}
	return checkFieldLengths(dst)
}

// checkJSONKeys rejects a JSON object whose keys are not valid UTF-8, do
// not match a field of dst exactly, or repeat. The standard decoder matches
// keys without regard to case and keeps the last of repeated ones, which
// would let "Username" override "username" unseen.
func checkJSONKeys(body []byte, dst any) error {
	if !utf8.Valid(body) {
		return onboard.Errorf(onboard.EInvalid, "The JSON body is not valid UTF-8 text.")
	}
	names := jsonFieldNames(dst)
	allowed := make(map[string]bool, len(names))
	for _, name := range names {
		allowed[name] = true
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil // not an object: decodeJSON reports it
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		key, _ := tok.(string)
		switch {
		case !allowed[key]:
			return unknownFieldError(clip(key, 40), names)
		case seen[key]:
			return onboard.FieldError(key, "Field %q appears twice; send it once.", key)
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil
		}
	}
	return nil
}

// unknownFieldError returns EInvalid for a JSON key that is not one of
// names. For a key that differs from a name only in case, the message gives
// that name. For any other key, it lists the names the address accepts.
func unknownFieldError(key string, names []string) error {
	lower := strings.ToLower(key)
	if lower != key && slices.Contains(names, lower) {
		return onboard.FieldError(key, "Field %q is unknown here. Field names are lowercase, so send %q instead.",
			key, lower)
	}
	if len(names) == 0 {
		return onboard.FieldError(key, "Field %q is unknown here. This address accepts no fields.", key)
	}
	return onboard.FieldError(key, "Field %q is unknown here. This address accepts %s.", key, joinNames(names))
}

// joinNames lists names as "a, b and c".
func joinNames(names []string) string {
	if len(names) == 1 {
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// jsonFieldNames returns the json tag names of the struct dst points to, in
// the order of its fields.
func jsonFieldNames(dst any) []string {
	var names []string
	t := reflect.TypeOf(dst)
	if t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return names
	}
	t = t.Elem()
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			names = append(names, name)
		}
	}
	return names
}

// checkFormValues rejects a form with a field sent twice or a value that is
// not valid UTF-8; the form decoder would keep one of the values silently.
func checkFormValues(c *fiber.Ctx) error {
	var err error
	seen := map[string]bool{}
	visit := func(key, value []byte) {
		if err != nil {
			return
		}
		name := string(key)
		switch {
		case !utf8.Valid(key) || !utf8.Valid(value):
			err = onboard.FieldError(clip(strings.ToValidUTF8(name, "?"), 40), "Field %q is not valid UTF-8 text.",
				clip(strings.ToValidUTF8(name, "?"), 40))
		case seen[name]:
			err = onboard.FieldError(clip(name, 40), "Field %q appears twice; send it once.", clip(name, 40))
		}
		seen[name] = true
	}
	c.Request().PostArgs().VisitAll(visit)
	if err != nil {
		return err
	}
	if form, ferr := c.MultipartForm(); ferr == nil {
		for name, values := range form.Value {
			for _, v := range values {
				visit([]byte(name), []byte(v))
			}
		}
	}
	return err
}

// decodeJSON reads exactly one JSON value into dst; an empty body leaves dst
// as it is.
func decodeJSON(body []byte, dst any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	if err == nil {
		if _, next := dec.Token(); next != io.EOF {
			err = errors.New("data after the JSON value")
		}
	}
	if err == nil {
		return nil
	}
	var fe *onboard.Error
	if errors.As(err, &fe) {
		return fe
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		if isInteger(typeErr.Type) {
			return jsonIntegerError(typeErr)
		}
		return onboard.FieldError(typeErr.Field, "%s must be a JSON %s, not %s.",
			fieldLabel(typeErr.Field), jsonKind(typeErr.Type), typeErr.Value)
	}
	return onboard.Errorf(onboard.EInvalid, "The JSON body could not be read: %s.", jsonErrorText(err))
}

// isInteger reports whether t, or the type t points to, is a Go integer.
func isInteger(t reflect.Type) bool {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

// jsonIntegerError explains why the JSON decoder rejected the value of an
// integer field. The error's Value is "number 1e9" for a number, and the
// JSON type, such as "string", for anything else.
func jsonIntegerError(typeErr *json.UnmarshalTypeError) error {
	literal, isNumber := strings.CutPrefix(typeErr.Value, "number ")
	if !isNumber {
		kind := typeErr.Value
		if kind == "bool" {
			kind = "boolean"
		}
		return onboard.FieldError(typeErr.Field, "%s must be a whole number, not a JSON %s.",
			fieldLabel(typeErr.Field), kind)
	}
	return integerError(typeErr.Field, typeErr.Type, literal)
}

// integerError explains why literal, the text of a JSON number or a form
// value, is not a valid value for the integer field of type t. A value such
// as 1e9 or 2.0 is a whole number, but the decoders read only plain digits,
// so the message shows it in digits.
func integerError(field string, t reflect.Type, literal string) error {
	label, quoted := fieldLabel(field), clip(literal, 40)
	// 1024 bits keep every digit of a value near the 64-bit limits, so
	// that 9223372036854775807.5 does not round to a whole number.
	f, ok := new(big.Float).SetPrec(1024).SetString(literal)
	if !ok && isHugeNumber(literal) {
		return onboard.FieldError(field, "%s must be a whole number, not %s, which is out of range.", label, quoted)
	}
	if !ok || !f.IsInt() {
		return onboard.FieldError(field, "%s must be a whole number, not %s.", label, quoted)
	}
	digits := f.Text('f', 0)
	if parseInteger(digits, t) != nil {
		return onboard.FieldError(field, "%s must be a whole number, not %s, which is out of range.", label, quoted)
	}
	return onboard.FieldError(field, "%s must be a whole number in plain digits, so send %s instead of %s.",
		label, digits, quoted)
}

// isHugeNumber reports whether literal is a number too large for a float64,
// such as 1e999999999999, whose exponent big.Float cannot hold either.
func isHugeNumber(literal string) bool {
	v, err := strconv.ParseFloat(literal, 64)
	return errors.Is(err, strconv.ErrRange) && math.IsInf(v, 0)
}

// checkFormIntegers returns EInvalid for the first integer field of the
// struct dst points to whose form value is not plain digits within the
// field's type, with the message a JSON body gets. Fiber's form decoder
// reports only that it could not convert the value.
func checkFormIntegers(c *fiber.Ctx, dst any) error {
	t := reflect.TypeOf(dst)
	if t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return nil
	}
	t = t.Elem()
	for i := 0; i < t.NumField(); i++ {
		field := t.Field(i)
		name, _, _ := strings.Cut(field.Tag.Get("form"), ",")
		if name == "" || name == "-" || !isInteger(field.Type) {
			continue
		}
		value, ok := formValue(c, name)
		if !ok || value == "" {
			continue
		}
		if err := parseInteger(value, field.Type); err != nil {
			return integerError(name, field.Type, value)
		}
	}
	return nil
}

// parseInteger returns an error unless value is plain digits, with an
// optional sign, that fit the integer type t or the type t points to.
func parseInteger(value string, t reflect.Type) error {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64 {
		_, err := strconv.ParseInt(value, 10, t.Bits())
		return err
	}
	_, err := strconv.ParseUint(value, 10, t.Bits())
	return err
}

// formValue returns the value of a URL-encoded or multipart form field of
// the body, never of the query string.
func formValue(c *fiber.Ctx, name string) (string, bool) {
	if v := c.Request().PostArgs().Peek(name); v != nil {
		return string(v), true
	}
	if form, err := c.MultipartForm(); err == nil && len(form.Value[name]) > 0 {
		return form.Value[name][0], true
	}
	return "", false
}

// checkFieldLengths returns EInvalid for the first string field of the
// struct dst points to that is longer than its maxlen tag, or than
// defaultFieldMax without one.
func checkFieldLengths(dst any) error {
	v := reflect.ValueOf(dst)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil
	}
	v = v.Elem()
	for i := 0; i < v.NumField(); i++ {
		field := v.Type().Field(i)
		if v.Field(i).Kind() != reflect.String {
			continue
		}
		limit := defaultFieldMax
		if tag := field.Tag.Get("maxlen"); tag != "" {
			limit, _ = strconv.Atoi(tag)
		}
		if n := len(v.Field(i).String()); n > limit {
			name := fieldName(field)
			return onboard.FieldError(name, "%s is too long: %d bytes, at most %d.", fieldLabel(name), n, limit)
		}
	}
	return nil
}

// fieldName returns the name a client uses for the field: its JSON name,
// then its form name.
func fieldName(f reflect.StructField) string {
	for _, key := range []string{"json", "form"} {
		if name, _, _ := strings.Cut(f.Tag.Get(key), ","); name != "" && name != "-" {
			return name
		}
	}
	return f.Name
}

// fieldLabel turns a field name such as full_name into "Full name".
func fieldLabel(name string) string {
	name = strings.ReplaceAll(name, "_", " ")
	if name == "" {
		return name
	}
	return strings.ToUpper(name[:1]) + name[1:]
}

// jsonKind names the JSON type that decodes into t.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	case reflect.Slice, reflect.Array:
		return "array"
	}
	return "object"
}

// jsonErrorText shortens a decoding error to the part an admin needs.
func jsonErrorText(err error) string {
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) {
		return fmt.Sprintf("%s (at byte %d)", strings.TrimPrefix(syntaxErr.Error(), "json: "), syntaxErr.Offset)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "the JSON value ends early"
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return "expected a JSON " + jsonKind(typeErr.Type) + ", not " + typeErr.Value
	}
	return clip(strings.TrimPrefix(err.Error(), "json: "), 200)
}

// clip shortens s to at most max bytes without splitting a UTF-8 sequence.
func clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// isAPI reports whether the request is for the JSON API.
func isAPI(c *fiber.Ctx) bool { return strings.HasPrefix(c.Path(), "/api/") }
