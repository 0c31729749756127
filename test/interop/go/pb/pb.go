// Package pb holds what the Go interop peers share: hand-built protobuf payloads (no code
// generation), a pass-through message type for the ttrpc codec, and a frame sniffer that records
// the exact ttRPC Requests seen on a connection.
package pb

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/containerd/ttrpc"
	"github.com/gogo/protobuf/proto"
	"google.golang.org/grpc/status"
)

// Wire types of protobuf fields.
const (
	WireVarint  = 0
	WireFixed64 = 1
	WireBytes   = 2
	WireFixed32 = 5
)

// Enc builds a protobuf message field by field, in the order the caller gives.
type Enc struct{ buf *proto.Buffer }

func NewEnc() *Enc { return &Enc{buf: proto.NewBuffer(nil)} }

func (e *Enc) tag(num, wt int) { _ = e.buf.EncodeVarint(uint64(num)<<3 | uint64(wt)) }

// Bytes returns the encoded message.
func (e *Enc) Bytes() []byte { return e.buf.Bytes() }

// Str writes a string field; proto3 omits empty strings.
func (e *Enc) Str(num int, s string) *Enc {
	if s != "" {
		e.tag(num, WireBytes)
		_ = e.buf.EncodeStringBytes(s)
	}
	return e
}

// Strs writes a repeated string field (every element, even empty ones).
func (e *Enc) Strs(num int, list ...string) *Enc {
	for _, s := range list {
		e.tag(num, WireBytes)
		_ = e.buf.EncodeStringBytes(s)
	}
	return e
}

// Blob writes a bytes field; proto3 omits empty ones.
func (e *Enc) Blob(num int, b []byte) *Enc {
	if len(b) > 0 {
		e.tag(num, WireBytes)
		_ = e.buf.EncodeRawBytes(b)
	}
	return e
}

// Msg writes an embedded message; always present, even when empty.
func (e *Enc) Msg(num int, m []byte) *Enc {
	e.tag(num, WireBytes)
	_ = e.buf.EncodeRawBytes(m)
	return e
}

// Uint writes a varint field; proto3 omits zero.
func (e *Enc) Uint(num int, v uint64) *Enc {
	if v != 0 {
		e.tag(num, WireVarint)
		_ = e.buf.EncodeVarint(v)
	}
	return e
}

// UintPresent writes a varint field even when zero (proto3 `optional` presence).
func (e *Enc) UintPresent(num int, v uint64) *Enc {
	e.tag(num, WireVarint)
	_ = e.buf.EncodeVarint(v)
	return e
}

// Int writes a signed (int32/int64, not zigzag) varint field; proto3 omits zero.
func (e *Enc) Int(num int, v int64) *Enc { return e.Uint(num, uint64(v)) }

// Bool writes a bool field; proto3 omits false.
func (e *Enc) Bool(num int, v bool) *Enc {
	if v {
		e.Uint(num, 1)
	}
	return e
}

// Packed writes a packed repeated varint field.
func (e *Enc) Packed(num int, vals ...uint64) *Enc {
	inner := proto.NewBuffer(nil)
	for _, v := range vals {
		_ = inner.EncodeVarint(v)
	}
	return e.Blob(num, inner.Bytes())
}

// Map writes map<string,string> entries in the given order (pairs k1, v1, k2, v2 ...).
func (e *Enc) Map(num int, kv ...string) *Enc {
	for i := 0; i+1 < len(kv); i += 2 {
		e.Msg(num, NewEnc().Str(1, kv[i]).Str(2, kv[i+1]).Bytes())
	}
	return e
}

// Field is one decoded field, with the exact bytes it occupied (tag included).
type Field struct {
	Num    int
	Wire   int
	Varint uint64 // varint, fixed32 and fixed64 values
	Data   []byte // length-delimited contents
	Raw    []byte // tag + value as on the wire
}

// Parse splits a message into its fields, in wire order.
func Parse(b []byte) ([]Field, error) {
	var out []Field
	off := 0
	for off < len(b) {
		start := off
		key, n := proto.DecodeVarint(b[off:])
		if n == 0 {
			return nil, fmt.Errorf("field at %d: bad tag", start)
		}
		off += n
		f := Field{Num: int(key >> 3), Wire: int(key & 7)}
		if f.Num == 0 {
			return nil, fmt.Errorf("field at %d: number 0", start)
		}
		switch f.Wire {
		case WireVarint:
			f.Varint, n = proto.DecodeVarint(b[off:])
			if n == 0 {
				return nil, fmt.Errorf("field %d at %d: bad varint", f.Num, start)
			}
			off += n
		case WireFixed64, WireFixed32:
			size := 8
			if f.Wire == WireFixed32 {
				size = 4
			}
			if len(b)-off < size {
				return nil, fmt.Errorf("field %d at %d: truncated", f.Num, start)
			}
			for i := size - 1; i >= 0; i-- {
				f.Varint = f.Varint<<8 | uint64(b[off+i])
			}
			off += size
		case WireBytes:
			l, n := proto.DecodeVarint(b[off:])
			if n == 0 || l > uint64(len(b)-off-n) {
				return nil, fmt.Errorf("field %d at %d: bad length", f.Num, start)
			}
			off += n
			f.Data = b[off : off+int(l)]
			off += int(l)
		default:
			return nil, fmt.Errorf("field %d at %d: unsupported wire type %d", f.Num, start, f.Wire)
		}
		f.Raw = b[start:off]
		out = append(out, f)
	}
	return out, nil
}

// Get returns the fields with the given number.
func Get(fields []Field, num int) []Field {
	var out []Field
	for _, f := range fields {
		if f.Num == num {
			out = append(out, f)
		}
	}
	return out
}

// GetStr returns the last string value of a field, "" when absent.
func GetStr(fields []Field, num int) string {
	s := ""
	for _, f := range Get(fields, num) {
		s = string(f.Data)
	}
	return s
}

// GetUint returns the last varint value of a field, 0 when absent.
func GetUint(fields []Field, num int) uint64 {
	var v uint64
	for _, f := range Get(fields, num) {
		v = f.Varint
	}
	return v
}

// Raw is a message kept as its serialized bytes: the gogo codec of ttrpc calls Marshal and
// Unmarshal on it, so payloads cross the library untouched.
type Raw struct{ B []byte }

func (m *Raw) Reset()                   { m.B = nil }
func (m *Raw) String() string           { return hex.EncodeToString(m.B) }
func (*Raw) ProtoMessage()              {}
func (m *Raw) Marshal() ([]byte, error) { return m.B, nil }
func (m *Raw) Unmarshal(b []byte) error { m.B = append([]byte(nil), b...); return nil }

// Frame is one ttRPC frame.
type Frame struct {
	Length uint32
	Stream uint32
	Type   byte
	Flags  byte
	Data   []byte
}

// Bytes returns the frame as on the wire.
func (f Frame) Bytes() []byte {
	b := make([]byte, 10, 10+len(f.Data))
	b[0], b[1], b[2], b[3] = byte(f.Length>>24), byte(f.Length>>16), byte(f.Length>>8), byte(f.Length)
	b[4], b[5], b[6], b[7] = byte(f.Stream>>24), byte(f.Stream>>16), byte(f.Stream>>8), byte(f.Stream)
	b[8], b[9] = f.Type, f.Flags
	return append(b, f.Data...)
}

// MakeFrame builds a frame around data.
func MakeFrame(stream uint32, typ, flags byte, data []byte) Frame {
	return Frame{Length: uint32(len(data)), Stream: stream, Type: typ, Flags: flags, Data: data}
}

// frameSplitter turns a byte stream into frames; oversized frames are skipped.
type frameSplitter struct {
	buf  []byte
	skip uint64
	on   func(Frame)
}

func (s *frameSplitter) feed(b []byte) {
	for len(b) > 0 {
		if s.skip > 0 {
			n := uint64(len(b))
			if n > s.skip {
				n = s.skip
			}
			s.skip -= n
			b = b[n:]
			continue
		}
		s.buf = append(s.buf, b...)
		b = nil
		for len(s.buf) >= 10 {
			n := uint32(s.buf[0])<<24 | uint32(s.buf[1])<<16 | uint32(s.buf[2])<<8 | uint32(s.buf[3])
			if n > 4<<20 {
				rest := s.buf[10:]
				s.buf = nil
				s.skip = uint64(n)
				b = rest
				break
			}
			if uint32(len(s.buf)-10) < n {
				break
			}
			f := Frame{
				Length: n,
				Stream: uint32(s.buf[4])<<24 | uint32(s.buf[5])<<16 | uint32(s.buf[6])<<8 | uint32(s.buf[7]),
				Type:   s.buf[8],
				Flags:  s.buf[9],
				Data:   append([]byte(nil), s.buf[10:10+n]...),
			}
			s.buf = s.buf[10+n:]
			s.on(f)
		}
	}
}

// Record is one ttRPC Request as it was on the wire; it is what the peers log, one JSON line each.
type Record struct {
	Service     string      `json:"service"`
	Method      string      `json:"method"`
	PayloadHex  string      `json:"payload_hex"`
	TimeoutNano int64       `json:"timeout_nano"`
	Metadata    [][2]string `json:"metadata"`
	StreamID    uint32      `json:"stream_id"`
	Conn        int         `json:"conn"`
	FrameHex    string      `json:"frame_hex,omitempty"`
}

// RecordFromFrame decodes a Request frame with ttrpc's own envelope type.
func RecordFromFrame(f Frame, conn int, withFrame bool) (Record, error) {
	var req ttrpc.Request
	if err := proto.Unmarshal(f.Data, &req); err != nil {
		return Record{}, err
	}
	r := Record{
		Service:     req.Service,
		Method:      req.Method,
		PayloadHex:  hex.EncodeToString(req.Payload),
		TimeoutNano: req.TimeoutNano,
		Metadata:    [][2]string{},
		StreamID:    f.Stream,
		Conn:        conn,
	}
	for _, kv := range req.Metadata {
		r.Metadata = append(r.Metadata, [2]string{kv.Key, kv.Value})
	}
	if withFrame && len(f.Data) <= 64<<10 {
		r.FrameHex = hex.EncodeToString(f.Bytes())
	}
	return r, nil
}

// Recorder appends Records to a file, one JSON line each.
type Recorder struct {
	mu    sync.Mutex
	f     *os.File
	conns int
}

// NewRecorder opens path for appending; an empty path gives a recorder that drops everything.
func NewRecorder(path string) (*Recorder, error) {
	if path == "" {
		return &Recorder{}, nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &Recorder{f: f}, nil
}

func (r *Recorder) nextConn() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.conns++
	return r.conns
}

// Add writes one record.
func (r *Recorder) Add(rec Record) {
	if r == nil || r.f == nil {
		return
	}
	line, _ := json.Marshal(rec)
	r.mu.Lock()
	defer r.mu.Unlock()
	_, _ = r.f.Write(append(line, '\n'))
}

// sniffConn records every Request frame that passes in one direction.
type sniffConn struct {
	net.Conn
	rd, wr *frameSplitter
}

func (c *sniffConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && c.rd != nil {
		c.rd.feed(b[:n])
	}
	return n, err
}

// Write records before sending: the process may exit as soon as the answer arrives.
func (c *sniffConn) Write(b []byte) (int, error) {
	if c.wr != nil {
		c.wr.feed(b)
	}
	return c.Conn.Write(b)
}

func (r *Recorder) splitter(conn int) *frameSplitter {
	return &frameSplitter{on: func(f Frame) {
		if f.Type != 1 {
			return
		}
		rec, err := RecordFromFrame(f, conn, true)
		if err != nil {
			fmt.Fprintf(os.Stderr, "record: undecodable request on stream %d: %v\n", f.Stream, err)
			return
		}
		r.Add(rec)
	}}
}

// SniffReads wraps a server-side connection: Requests read from it are recorded.
func (r *Recorder) SniffReads(c net.Conn) net.Conn {
	if r == nil || r.f == nil {
		return c
	}
	return &sniffConn{Conn: c, rd: r.splitter(r.nextConn())}
}

// SniffWrites wraps a client-side connection: Requests written to it are recorded.
func (r *Recorder) SniffWrites(c net.Conn) net.Conn {
	if r == nil || r.f == nil {
		return c
	}
	return &sniffConn{Conn: c, wr: r.splitter(r.nextConn())}
}

// Handshaker makes a ttrpc server record the Requests of every connection it accepts.
type Handshaker struct{ R *Recorder }

func (h Handshaker) Handshake(ctx context.Context, c net.Conn) (net.Conn, interface{}, error) {
	return h.R.SniffReads(c), nil, nil
}

// ReadRecords loads a JSON-lines record file.
func ReadRecords(path string) ([]Record, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []Record
	for i, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var r Record
		if err := json.Unmarshal(line, &r); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, i+1, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// ListenUnix removes a stale socket and listens on path.
func ListenUnix(path string) (net.Listener, error) {
	_ = os.Remove(path)
	return net.Listen("unix", path)
}

// DialRetry dials a Unix socket until it answers or limit passes, as the shim does.
func DialRetry(path string, limit time.Duration) (net.Conn, error) {
	deadline := time.Now().Add(limit)
	for {
		c, err := net.Dial("unix", path)
		if err == nil {
			return c, nil
		}
		if time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Emit prints one JSON object on stdout.
func Emit(v interface{}) {
	line, _ := json.Marshal(v)
	fmt.Println(string(line))
}

// ErrorFields returns the status code and message of a ttrpc call error (-1 when the error has no
// status, e.g. a connection failure or a local deadline).
func ErrorFields(err error) (int, string) {
	if errors.Is(err, context.DeadlineExceeded) {
		return -1, err.Error()
	}
	if st, ok := status.FromError(err); ok {
		return int(st.Code()), st.Message()
	}
	return -1, err.Error()
}

// Fail prints a call error as JSON and exits 1.
func Fail(call string, err error) {
	code, msg := ErrorFields(err)
	Emit(map[string]interface{}{"call": call, "ok": false, "code": code, "message": msg})
	os.Exit(1)
}

// MultiFlag collects a repeated command-line flag.
type MultiFlag []string

func (m *MultiFlag) String() string     { return strings.Join(*m, ",") }
func (m *MultiFlag) Set(v string) error { *m = append(*m, v); return nil }

// Pairs splits "k=v" strings.
func Pairs(list []string) ([][2]string, error) {
	var out [][2]string
	for _, s := range list {
		i := strings.IndexByte(s, '=')
		if i <= 0 {
			return nil, fmt.Errorf("%q is not k=v", s)
		}
		out = append(out, [2]string{s[:i], s[i+1:]})
	}
	return out, nil
}

// WithMetadata attaches k=v pairs as ttrpc metadata.
func WithMetadata(ctx context.Context, pairs [][2]string) context.Context {
	if len(pairs) == 0 {
		return ctx
	}
	md := ttrpc.MD{}
	for _, p := range pairs {
		md.Append(p[0], p[1])
	}
	return ttrpc.WithMetadata(ctx, md)
}

// CallCtx returns a context with the given timeout (none when <= 0).
func CallCtx(timeout time.Duration, md [][2]string) (context.Context, context.CancelFunc) {
	ctx := WithMetadata(context.Background(), md)
	if timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, timeout)
}
