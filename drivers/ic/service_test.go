package ic

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// echoConfig is a service whose handler bumps the first body byte.
func echoConfig() Config {
	return Config{
		Name:     "test",
		Type:     TypeHeartbeat,
		Versions: []Version{{3, 0}, {1, 0}},
		Handle: func(msg []byte, v Version) Status {
			if len(msg) <= HeaderSize {
				return StatusInvalidArg
			}
			msg[HeaderSize]++
			return StatusOK
		},
	}
}

// request builds a request of typ with body.
func request(typ MessageType, body ...byte) []byte {
	b := make([]byte, HeaderSize+len(body))
	h := Header{PipeFlags: PipeFlagData, Framework: Version{3, 0}, Type: typ, MessageVersion: Version{3, 0},
		Size: uint16(len(body)), Flags: FlagTransaction | FlagRequest}
	h.Encode(b)
	copy(b[HeaderSize:], body)
	return b
}

func TestNewServiceRejectsBadConfig(t *testing.T) {
	for _, mutate := range []func(*Config){
		func(c *Config) { c.Handle = nil },
		func(c *Config) { c.Versions = nil },
		func(c *Config) { c.Type = TypeNegotiate },
		func(c *Config) { c.RingSize = 4096 },
		func(c *Config) { c.RingSize = 3 * 4097 },
	} {
		cfg := echoConfig()
		mutate(&cfg)
		if _, err := NewService(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("NewService(%+v) err = %v, want ErrConfig", cfg, err)
		}
	}
}

func TestProcessSequence(t *testing.T) {
	s, err := NewService(echoConfig())
	if err != nil {
		t.Fatal(err)
	}

	// Before negotiation, a service message is answered "not supported".
	msg := request(TypeHeartbeat, 1)
	if !s.process(msg) {
		t.Fatal("no reply before negotiation")
	}
	if h, _ := ParseHeader(msg); h.Status != StatusNotSupported || h.Flags != FlagTransaction|FlagResponse || msg[HeaderSize] != 1 {
		t.Fatalf("pre-negotiation reply %+v body %d", h, msg[HeaderSize])
	}

	msg = bytes.Clone(windowsNegotiate)
	if !s.process(msg) || !bytes.Equal(msg, windowsNegotiateReply) {
		t.Fatalf("negotiation reply =\n% x\nwant\n% x", msg, windowsNegotiateReply)
	}

	msg = request(TypeHeartbeat, 41)
	if !s.process(msg) {
		t.Fatal("no reply")
	}
	if h, _ := ParseHeader(msg); h.Status != StatusOK || h.Flags != FlagTransaction|FlagResponse || msg[HeaderSize] != 42 {
		t.Fatalf("reply %+v body %d", h, msg[HeaderSize])
	}

	// A message of another service's type is refused, not handled.
	msg = request(TypeShutdown, 7)
	if !s.process(msg) || msg[HeaderSize] != 7 {
		t.Fatal("foreign type was handled")
	}
	if h, _ := ParseHeader(msg); h.Status != StatusNotSupported {
		t.Fatalf("foreign type status %v", h.Status)
	}

	// Unanswerable packets: too short for a header, or a response.
	if s.process(make([]byte, HeaderSize-1)) {
		t.Fatal("replied to a truncated header")
	}
	resp := request(TypeHeartbeat, 1)
	resp[offFlags] = uint8(FlagTransaction | FlagResponse)
	if s.process(resp) {
		t.Fatal("replied to a response")
	}

	// A hostile negotiation is answered with a failure and changes nothing.
	hostile := bytes.Clone(windowsNegotiate)
	binary.LittleEndian.PutUint16(hostile[offNegMessageCount:], 1000)
	if !s.process(hostile) {
		t.Fatal("no reply to hostile negotiation")
	}
	if h, _ := ParseHeader(hostile); h.Status != StatusInvalidArg {
		t.Fatalf("hostile negotiation status %v", h.Status)
	}

	want := Stats{Messages: 2, BadMessages: 5, Negotiations: 1, Framework: Version{3, 0}, Message: Version{3, 0}, Negotiated: true}
	if got := s.Stats(); got != want {
		t.Fatalf("Stats = %+v, want %+v", got, want)
	}
}

func TestProcessNoCommonVersion(t *testing.T) {
	s, err := NewService(echoConfig())
	if err != nil {
		t.Fatal(err)
	}
	msg := negotiation([]Version{{3, 0}}, []Version{{5, 0}})
	if !s.process(msg) {
		t.Fatal("no reply")
	}
	le := binary.LittleEndian
	if le.Uint16(msg[28:]) != 0 || le.Uint16(msg[30:]) != 0 || msg[offFlags] != 0x05 {
		t.Fatalf("reply % x, want counts 0/0 and response flags", msg)
	}
	msg = request(TypeHeartbeat, 1)
	s.process(msg)
	if h, _ := ParseHeader(msg); h.Status != StatusNotSupported || msg[HeaderSize] != 1 {
		t.Fatal("service answered after a failed negotiation")
	}
	if st := s.Stats(); st.Negotiated || st.Negotiations != 0 {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestProcessAllocatesNothing(t *testing.T) {
	s, err := NewService(echoConfig())
	if err != nil {
		t.Fatal(err)
	}
	s.process(bytes.Clone(windowsNegotiate))
	msg := request(TypeHeartbeat, 0)
	if n := testing.AllocsPerRun(100, func() { s.process(msg) }); n != 0 {
		t.Fatalf("process allocates %v per message", n)
	}
}
