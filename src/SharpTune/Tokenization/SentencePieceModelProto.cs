using System.Text;

namespace SharpTune.Tokenization;

/// <summary>The kinds of a SentencePiece vocabulary entry (sentencepiece_model.proto's <c>SentencePiece.Type</c>).</summary>
internal enum SentencePieceType
{
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
}

internal enum SentencePieceModelType
{
    Unigram = 1,
    Bpe = 2,
    Word = 3,
    Char = 4,
}

internal sealed record SentencePieceEntry(string Piece, float Score, SentencePieceType Type);

/// <summary>
/// The fields of a SentencePiece <c>tokenizer.model</c> (a serialized <c>ModelProto</c>) that encoding and decoding
/// read, parsed by a small protobuf wire-format reader. Defaults are sentencepiece_model.proto's. The trainer's
/// split_digits / split_by_whitespace / split_by_unicode_script / max_piece_length options only shape the vocabulary
/// at training time (sentencepiece's encoders never consult them), so they are not kept.
/// </summary>
internal sealed class SentencePieceModelProto
{
    public List<SentencePieceEntry> Pieces { get; } = new();
    public SentencePieceModelType ModelType { get; private set; } = SentencePieceModelType.Unigram;
    public bool ByteFallback { get; private set; }
    public bool TreatWhitespaceAsSuffix { get; private set; }
    /// <summary>What an unknown piece decodes to; U+2047 between spaces unless the trainer set another.</summary>
    public string UnknownSurface { get; private set; } = " \u2047 ";
    public byte[] PrecompiledCharsMap { get; private set; } = [];
    public bool AddDummyPrefix { get; private set; } = true;
    public bool RemoveExtraWhitespaces { get; private set; } = true;
    public bool EscapeWhitespaces { get; private set; } = true;

    /// <summary>True when <paramref name="bytes"/> begin like a ModelProto: field 1 (pieces), length-delimited.</summary>
    public static bool LooksLikeModelProto(ReadOnlySpan<byte> bytes) => bytes.Length > 0 && bytes[0] == 0x0A;

    /// <exception cref="InvalidDataException">The bytes are not a ModelProto: "field: problem at byte N".</exception>
    public static SentencePieceModelProto Parse(byte[] bytes)
    {
        var proto = new SentencePieceModelProto();
        var reader = new ProtoReader(bytes, 0, bytes.Length, "ModelProto");
        while (reader.Next(out int field, out int wireType))
        {
            switch (field)
            {
                case 1: proto.Pieces.Add(ReadPiece(reader.Message(wireType, $"pieces[{proto.Pieces.Count}]"))); break;
                case 2: proto.ReadTrainerSpec(reader.Message(wireType, "trainer_spec")); break;
                case 3: proto.ReadNormalizerSpec(reader.Message(wireType, "normalizer_spec")); break;
                default: reader.Skip(wireType); break;
            }
        }
        return proto;
    }

    private static SentencePieceEntry ReadPiece(ProtoReader reader)
    {
        string? piece = null;
        float score = 0;
        var type = SentencePieceType.Normal;
        while (reader.Next(out int field, out int wireType))
        {
            switch (field)
            {
                case 1: piece = reader.String(wireType, "piece"); break;
                case 2: score = reader.Float(wireType, "score"); break;
                case 3:
                    long value = reader.Varint(wireType, "type");
                    if (value is < 1 or > 6)
                        throw reader.Error("type", $"unknown piece type {value}");
                    type = (SentencePieceType)value;
                    break;
                default: reader.Skip(wireType); break;
            }
        }
        if (string.IsNullOrEmpty(piece))
            throw reader.Error("piece", "missing or empty");
        return new SentencePieceEntry(piece, score, type);
    }

    private void ReadTrainerSpec(ProtoReader reader)
    {
        while (reader.Next(out int field, out int wireType))
        {
            switch (field)
            {
                case 3:
                    long type = reader.Varint(wireType, "model_type");
                    if (type is < 1 or > 4)
                        throw reader.Error("model_type", $"unknown model type {type}");
                    ModelType = (SentencePieceModelType)type;
                    break;
                case 24: TreatWhitespaceAsSuffix = reader.Varint(wireType, "treat_whitespace_as_suffix") != 0; break;
                case 35: ByteFallback = reader.Varint(wireType, "byte_fallback") != 0; break;
                case 44: UnknownSurface = reader.String(wireType, "unk_surface"); break;
                default: reader.Skip(wireType); break;
            }
        }
    }

    private void ReadNormalizerSpec(ProtoReader reader)
    {
        while (reader.Next(out int field, out int wireType))
        {
            switch (field)
            {
                case 2: PrecompiledCharsMap = reader.Bytes(wireType, "precompiled_charsmap"); break;
                case 3: AddDummyPrefix = reader.Varint(wireType, "add_dummy_prefix") != 0; break;
                case 4: RemoveExtraWhitespaces = reader.Varint(wireType, "remove_extra_whitespaces") != 0; break;
                case 5: EscapeWhitespaces = reader.Varint(wireType, "escape_whitespaces") != 0; break;
                default: reader.Skip(wireType); break;
            }
        }
    }

    /// <summary>Reads one message's fields from the protobuf wire format; errors name the message path and byte offset.</summary>
    private sealed class ProtoReader(byte[] bytes, int start, int end, string path)
    {
        private const int VarintWire = 0, Fixed64Wire = 1, LengthDelimitedWire = 2, Fixed32Wire = 5;
        private int _position = start;

        public bool Next(out int field, out int wireType)
        {
            field = wireType = 0;
            if (_position >= end)
                return false;
            ulong key = ReadVarint("field key");
            field = (int)(key >> 3);
            wireType = (int)(key & 7);
            if (field == 0)
                throw Error("field key", "field number 0");
            return true;
        }

        public long Varint(int wireType, string name)
        {
            Expect(wireType, VarintWire, name);
            return (long)ReadVarint(name);
        }

        public float Float(int wireType, string name)
        {
            Expect(wireType, Fixed32Wire, name);
            if (end - _position < 4)
                throw Error(name, "truncated");
            float value = BitConverter.ToSingle(bytes, _position);
            _position += 4;
            return value;
        }

        public string String(int wireType, string name)
        {
            var (offset, length) = Delimited(wireType, name);
            try
            {
                return new UTF8Encoding(false, true).GetString(bytes, offset, length);
            }
            catch (DecoderFallbackException)
            {
                throw Error(name, "not valid UTF-8");
            }
        }

        public byte[] Bytes(int wireType, string name)
        {
            var (offset, length) = Delimited(wireType, name);
            return bytes.AsSpan(offset, length).ToArray();
        }

        public ProtoReader Message(int wireType, string name)
        {
            var (offset, length) = Delimited(wireType, name);
            return new ProtoReader(bytes, offset, offset + length, $"{path}.{name}");
        }

        public void Skip(int wireType)
        {
            switch (wireType)
            {
                case VarintWire: ReadVarint("unknown field"); break;
                case Fixed64Wire: Advance(8, "unknown field"); break;
                case LengthDelimitedWire: Delimited(wireType, "unknown field"); break;
                case Fixed32Wire: Advance(4, "unknown field"); break;
                default: throw Error("unknown field", $"unsupported wire type {wireType}");
            }
        }

        public InvalidDataException Error(string name, string problem) =>
            new($"{path}.{name}: {problem} at byte {_position}; not a SentencePiece model file");

        private (int Offset, int Length) Delimited(int wireType, string name)
        {
            Expect(wireType, LengthDelimitedWire, name);
            ulong length = ReadVarint(name);
            if (length > (ulong)(end - _position))
                throw Error(name, $"length {length} runs past the end of the message");
            int offset = _position;
            _position += (int)length;
            return (offset, (int)length);
        }

        private void Advance(int count, string name)
        {
            if (end - _position < count)
                throw Error(name, "truncated");
            _position += count;
        }

        private void Expect(int wireType, int expected, string name)
        {
            if (wireType != expected)
                throw Error(name, $"wire type {wireType}, expected {expected}");
        }

        private ulong ReadVarint(string name)
        {
            ulong value = 0;
            for (int shift = 0; shift < 64; shift += 7)
            {
                if (_position >= end)
                    throw Error(name, "truncated varint");
                byte b = bytes[_position++];
                value |= (ulong)(b & 0x7F) << shift;
                if (b < 0x80)
                    return value;
            }
            throw Error(name, "varint longer than 10 bytes");
        }
    }
}
