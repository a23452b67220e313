package record

// Field is one named value of a Record.
type Field struct {
	Name  string
	Value Value
}

// Record is an ordered set of uniquely named fields: a JSON object. The zero
// Record is empty and ready to use. Records are meant to be reused: Reset,
// CopyFrom and Decoder keep the capacity of Fields.
//
// Fields is exported so that hot-path code can iterate without copying;
// code writing to it directly must keep names unique (see the package doc).
type Record struct {
	Fields []Field
}

// Get returns the value of the named field and whether it exists. It scans
// linearly: records are small, and a scan beats a map's hashing for them.
func (r *Record) Get(name string) (Value, bool) {
	for i := range r.Fields {
		if r.Fields[i].Name == name {
			return r.Fields[i].Value, true
		}
	}
	return Value{}, false
}

// Set replaces the value of the named field, keeping its position, or
// appends the field if the record has none of that name.
func (r *Record) Set(name string, v Value) {
	for i := range r.Fields {
		if r.Fields[i].Name == name {
			r.Fields[i].Value = v
			return
		}
	}
	r.Fields = append(r.Fields, Field{Name: name, Value: v})
}

// Len returns the number of fields.
func (r *Record) Len() int { return len(r.Fields) }

// Reset empties r, keeping the capacity of Fields. The dropped fields are
// cleared so that r does not keep their strings and nested values alive.
func (r *Record) Reset() {
	clear(r.Fields)
	r.Fields = r.Fields[:0]
}

// CopyFrom makes r a copy of src, reusing r's capacity. Later changes to src
// through its methods (Set, Reset, Decode into it) do not affect r. Nested
// lists and maps are shared, which is safe because Values are immutable.
func (r *Record) CopyFrom(src *Record) {
	if r == src {
		return
	}
	r.Reset()
	r.Fields = append(r.Fields, src.Fields...)
}

// Clone returns a new copy of r (see CopyFrom for what is shared).
func (r *Record) Clone() *Record {
	c := &Record{Fields: make([]Field, len(r.Fields))}
	copy(c.Fields, r.Fields)
	return c
}

// Equal reports whether r and o have equal fields in the same order.
func (r *Record) Equal(o *Record) bool { return fieldsEqual(r.Fields, o.Fields) }

// String returns r in JSON form, for messages.
func (r *Record) String() string { return string(r.AppendJSON(nil)) }

// Decoders find a duplicate field name by scanning the fields decoded so far: no allocation, and fastest for the
// few fields records have. From indexFieldsFrom fields on they switch to a map, so that a hostile record of a
// million fields costs a million look-ups rather than half a trillion comparisons.
const indexFieldsFrom = 32

// fieldIndex maps names to positions in a Record's Fields being decoded; nil until the record is large.
type fieldIndex map[string]int

// findField returns the position of name in fs, or -1, using and maintaining *ix.
func findField[S string | []byte](ix *fieldIndex, fs []Field, name S) int {
	if len(fs) < indexFieldsFrom {
		for i := range fs {
			if fs[i].Name == string(name) {
				return i
			}
		}
		return -1
	}
	if *ix == nil {
		*ix = make(fieldIndex, 2*len(fs))
		for i := range fs {
			(*ix)[fs[i].Name] = i
		}
	}
	if i, ok := (*ix)[string(name)]; ok {
		return i
	}
	return -1
}

// added records that the last field of fs was just appended.
func (ix fieldIndex) added(fs []Field) {
	if ix != nil {
		ix[fs[len(fs)-1].Name] = len(fs) - 1
	}
}
