using SharpTune.Engine;
using SharpTune.Model;
using SharpTune.Training;

namespace SharpTune.Peft.PromptLearning;

/// <summary>
/// A prompt-learning method's model tuner as SharpTune trains and saves it: the values PEFT saves under
/// <c>prompt_embeddings</c> are the tuner's output (virtual tokens [n × hidden], or a prefix [n × layers·2·kv width]),
/// which for P-tuning and prefix projection is an encoder's output rather than a parameter.
/// </summary>
public interface IPromptLearningTuner : IModelTuner
{
    /// <summary>What PEFT saves as prompt_embeddings: the tuner's output of an evaluation pass, [n × width].</summary>
    (int[] Shape, float[] Data) PromptEmbeddingsToSave();
}

/// <summary>
/// Prompt tuning (PEFT's PromptEmbedding): the virtual tokens are the trained parameter <c>prompt_embeddings</c>
/// [n × hidden]. Also how a saved P-tuning adapter is served, since PEFT saves its encoder's output in the same place.
/// </summary>
public sealed class PromptEmbeddingTuner(Parameter embeddings) : IPromptLearningTuner
{
    public IReadOnlyList<Parameter> Parameters { get; } = [embeddings];
    public Parameter? VirtualTokens => embeddings;
    public int Tokens => embeddings.Shape[0];
    public (Parameter Keys, Parameter Values)? KeyValuePrefix(int layer) => null;
    public (int[] Shape, float[] Data) PromptEmbeddingsToSave() => (embeddings.Shape, embeddings.Data);
}

/// <summary>A trained Linear of a prompt encoder (weight [out × in], bias [out]), computed on the model's backend.</summary>
internal sealed class EncoderLinear
{
    public Parameter Weight { get; }
    public Parameter Bias { get; }
    public int In { get; }
    public int Out { get; }

    /// <summary>torch.nn.Linear's initialisation: weight and bias uniform in ±1/√in.</summary>
    public EncoderLinear(string name, int inFeatures, int outFeatures, SeededRandom random)
    {
        In = inFeatures;
        Out = outFeatures;
        double bound = 1.0 / Math.Sqrt(inFeatures);
        Weight = new Parameter(name + ".weight", [outFeatures, inFeatures], Uniform(outFeatures * inFeatures, bound, random));
        Bias = new Parameter(name + ".bias", [outFeatures], Uniform(outFeatures, bound, random)) { WeightDecay = false };
    }

    public static float[] Uniform(int count, double bound, SeededRandom random)
    {
        var values = new float[count];
        for (int i = 0; i < count; i++) values[i] = (float)((2 * random.NextDouble() - 1) * bound);
        return values;
    }

    public IEnumerable<Parameter> Parameters => [Weight, Bias];

    public void Forward(IComputeBackend backend, float[] x, int rows, float[] y) => Product(backend, x, rows, Weight.Data, In, Out, Bias.Data, y);

    /// <summary>Accumulates the weight and bias gradients from dy and writes dL/dx into dx.</summary>
    public void Backward(IComputeBackend backend, float[] x, float[] dy, int rows, float[] dx) =>
        ProductBackward(backend, x, dy, rows, Weight.Data, In, Out, Weight.Grad, Bias.Grad, dx, accumulate: false);

    // A prompt encoder turns parameters into parameters (the virtual tokens or prefixes, host arrays the decoder copies
    // in) once per step, so its few rows live on the host like the optimizer's state; its products run on the backend,
    // each input copied in and each result copied back.

    /// <summary>y [rows × out] = x [rows × in] · weightᵀ (+ bias) on the backend, for host x and y.</summary>
    public static void Product(IComputeBackend backend, float[] x, int rows, float[] weight, int inFeatures, int outFeatures, float[]? bias, float[] y)
    {
        var input = ToBackend(backend, x, rows, inFeatures);
        var output = backend.Allocate(rows, outFeatures);
        backend.Linear(input, rows, weight, inFeatures, outFeatures, bias, output);
        backend.CopyToHost(output, 0, y.AsSpan(0, rows * outFeatures));
    }

    /// <summary>The backward of <see cref="Product"/> for host x, dy and dx (dx added to when accumulate).</summary>
    public static void ProductBackward(IComputeBackend backend, float[] x, float[] dy, int rows, float[] weight, int inFeatures, int outFeatures,
        float[] weightGrad, float[] biasGrad, float[] dx, bool accumulate)
    {
        var dInput = accumulate ? ToBackend(backend, dx, rows, inFeatures) : backend.Allocate(rows, inFeatures);
        backend.LinearBackward(ToBackend(backend, x, rows, inFeatures), ToBackend(backend, dy, rows, outFeatures), rows, weight, inFeatures, outFeatures,
            weightGrad, biasGrad, dInput, accumulate);
        backend.CopyToHost(dInput, 0, dx.AsSpan(0, rows * inFeatures));
    }

    private static Tensor ToBackend(IComputeBackend backend, float[] values, int rows, int width)
    {
        var tensor = backend.Allocate(rows, width);
        backend.CopyFromHost(values.AsSpan(0, rows * width), tensor, 0);
        return tensor;
    }
}

/// <summary>Elementwise activations of the prompt encoders and their backward through the saved outputs.</summary>
internal static class EncoderActivations
{
    public static void Relu(float[] values, int count)
    {
        for (int i = 0; i < count; i++) values[i] = Math.Max(values[i], 0f);
    }

    /// <summary>dy ← dy ⊙ relu′, read from relu's output (0 where it was cut, as torch's relu backward at 0).</summary>
    public static void ReluBackward(float[] output, float[] dy, int count)
    {
        for (int i = 0; i < count; i++)
            if (output[i] <= 0f) dy[i] = 0f;
    }

    public static void Tanh(float[] values, int count)
    {
        for (int i = 0; i < count; i++) values[i] = MathF.Tanh(values[i]);
    }

    /// <summary>dy ← dy ⊙ (1 − tanh²), read from tanh's output.</summary>
    public static void TanhBackward(float[] output, float[] dy, int count)
    {
        for (int i = 0; i < count; i++) dy[i] *= 1f - output[i] * output[i];
    }

    /// <summary>torch.nn.Embedding's initialisation: standard normal.</summary>
    public static float[] Normal(int count, SeededRandom random)
    {
        var values = new float[count];
        for (int i = 0; i < count; i++) values[i] = (float)random.NextGaussian();
        return values;
    }
}

/// <summary>
/// P-tuning's prompt encoder with the MLP head (PEFT's PromptEncoder, encoder_reparameterization_type MLP): virtual
/// tokens = Linear(h→d)(relu(Linear(h→h)(relu(Linear(d→h)(E))))) for the trained embedding E [n × d], h =
/// encoder_hidden_size (PEFT always uses these three Linears, whatever encoder_num_layers says).
/// </summary>
public sealed class MlpPromptEncoderTuner : IPromptLearningTuner
{
    private readonly IComputeBackend _backend;
    private readonly Parameter _embedding;
    private readonly EncoderLinear _first, _second, _third;
    private readonly float[] _hidden1, _hidden2, _dHidden1, _dHidden2, _dEmbedding;
    private readonly Parameter _output;

    public MlpPromptEncoderTuner(int tokens, int tokenDim, int hiddenSize, SeededRandom random, IComputeBackend backend)
    {
        _backend = backend;
        _embedding = new Parameter("prompt_encoder.embedding.weight", [tokens, tokenDim], EncoderActivations.Normal(tokens * tokenDim, random));
        _first = new EncoderLinear("prompt_encoder.mlp_head.0", tokenDim, hiddenSize, random);
        _second = new EncoderLinear("prompt_encoder.mlp_head.2", hiddenSize, hiddenSize, random);
        _third = new EncoderLinear("prompt_encoder.mlp_head.4", hiddenSize, tokenDim, random);
        _hidden1 = new float[tokens * hiddenSize];
        _hidden2 = new float[tokens * hiddenSize];
        _dHidden1 = new float[tokens * hiddenSize];
        _dHidden2 = new float[tokens * hiddenSize];
        _dEmbedding = new float[tokens * tokenDim];
        _output = new Parameter("prompt_embeddings", [tokens, tokenDim], new float[tokens * tokenDim]);
        Parameters = [_embedding, .. _first.Parameters, .. _second.Parameters, .. _third.Parameters];
    }

    public IReadOnlyList<Parameter> Parameters { get; }
    public Parameter? VirtualTokens => _output;
    public int Tokens => _embedding.Shape[0];
    public (Parameter Keys, Parameter Values)? KeyValuePrefix(int layer) => null;

    public void Forward(TunerPass pass, SeededRandom? random)
    {
        int n = Tokens;
        _first.Forward(_backend, _embedding.Data, n, _hidden1);
        EncoderActivations.Relu(_hidden1, _hidden1.Length);
        _second.Forward(_backend, _hidden1, n, _hidden2);
        EncoderActivations.Relu(_hidden2, _hidden2.Length);
        _third.Forward(_backend, _hidden2, n, _output.Data);
    }

    public void Backward()
    {
        int n = Tokens;
        _third.Backward(_backend, _hidden2, _output.Grad, n, _dHidden2);
        EncoderActivations.ReluBackward(_hidden2, _dHidden2, _dHidden2.Length);
        _second.Backward(_backend, _hidden1, _dHidden2, n, _dHidden1);
        EncoderActivations.ReluBackward(_hidden1, _dHidden1, _dHidden1.Length);
        _first.Backward(_backend, _embedding.Data, _dHidden1, n, _dEmbedding);
        System.Numerics.Tensors.TensorPrimitives.Add(_embedding.Grad, _dEmbedding, _embedding.Grad);
        _output.ZeroGrad();
    }

    public (int[] Shape, float[] Data) PromptEmbeddingsToSave()
    {
        Forward(TunerPass.Evaluate, null);
        return (_output.Shape, _output.Data);
    }
}

/// <summary>
/// Prefix tuning (P-tuning v2, PEFT's PrefixEncoder): per virtual token one row [layers·2·kv heads·head dim], viewed
/// [2·layers, kv heads, head dim] with index 2i layer i's key and 2i+1 its value, put before the layer's keys and values
/// after RoPE. Without projection the rows are the parameter <c>prompt_embeddings</c>; with prefix_projection they are
/// Linear(h→layers·2·kv width)(tanh(Linear(kv width→h)(E))) for a trained embedding E [n × kv width], h =
/// encoder_hidden_size.
/// </summary>
public sealed class PrefixTuner : IPromptLearningTuner
{
    private readonly IComputeBackend? _backend;
    private readonly int _layers, _kvWidth;
    private readonly Parameter _rows;
    private readonly (Parameter Keys, Parameter Values)[] _prefixes;
    // With projection: the embedding, both Linears and the tanh's output.
    private readonly Parameter? _embedding;
    private readonly EncoderLinear? _down, _up;
    private readonly float[] _hidden = [], _dHidden = [], _dEmbedding = [];

    /// <summary>The prefix is the parameter <c>prompt_embeddings</c> [n × layers·2·kv width].</summary>
    public PrefixTuner(Parameter rows, int layers, int kvWidth)
    {
        _rows = rows;
        _layers = layers;
        _kvWidth = kvWidth;
        _prefixes = CreatePrefixes(rows.Shape[0], layers, kvWidth);
        Parameters = [rows];
    }

    /// <summary>prefix_projection: the prefix is the output of embedding → Linear → tanh → Linear.</summary>
    public PrefixTuner(int tokens, int layers, int kvWidth, int hiddenSize, SeededRandom random, IComputeBackend backend)
    {
        _backend = backend;
        _layers = layers;
        _kvWidth = kvWidth;
        _embedding = new Parameter("prompt_encoder.embedding.weight", [tokens, kvWidth], EncoderActivations.Normal(tokens * kvWidth, random));
        _down = new EncoderLinear("prompt_encoder.transform.0", kvWidth, hiddenSize, random);
        _up = new EncoderLinear("prompt_encoder.transform.2", hiddenSize, layers * 2 * kvWidth, random);
        _hidden = new float[tokens * hiddenSize];
        _dHidden = new float[tokens * hiddenSize];
        _dEmbedding = new float[tokens * kvWidth];
        _rows = new Parameter("prompt_embeddings", [tokens, layers * 2 * kvWidth], new float[tokens * layers * 2 * kvWidth]);
        _prefixes = CreatePrefixes(tokens, layers, kvWidth);
        Parameters = [_embedding, .. _down.Parameters, .. _up.Parameters];
    }

    private static (Parameter, Parameter)[] CreatePrefixes(int tokens, int layers, int kvWidth) =>
        Enumerable.Range(0, layers).Select(l => (
            new Parameter($"prefix.{l}.keys", [tokens, kvWidth], new float[tokens * kvWidth]),
            new Parameter($"prefix.{l}.values", [tokens, kvWidth], new float[tokens * kvWidth]))).ToArray();

    public IReadOnlyList<Parameter> Parameters { get; }
    public Parameter? VirtualTokens => null;
    public int Tokens => _rows.Shape[0];
    public (Parameter Keys, Parameter Values)? KeyValuePrefix(int layer) => layer < _layers ? _prefixes[layer] : null;

    public void Forward(TunerPass pass, SeededRandom? random)
    {
        int n = Tokens;
        if (_embedding is not null)
        {
            _down!.Forward(_backend!, _embedding.Data, n, _hidden);
            EncoderActivations.Tanh(_hidden, _hidden.Length);
            _up!.Forward(_backend!, _hidden, n, _rows.Data);
        }
        int width = _layers * 2 * _kvWidth;
        for (int l = 0; l < _layers; l++)
        {
            var (keys, values) = _prefixes[l];
            for (int v = 0; v < n; v++)
            {
                Array.Copy(_rows.Data, v * width + 2 * l * _kvWidth, keys.Data, v * _kvWidth, _kvWidth);
                Array.Copy(_rows.Data, v * width + (2 * l + 1) * _kvWidth, values.Data, v * _kvWidth, _kvWidth);
            }
        }
    }

    public void Backward()
    {
        int n = Tokens, width = _layers * 2 * _kvWidth;
        // Without projection the rows are the parameter, so the prefixes' gradients are added to its gradient; with
        // it the rows' gradient is the encoder output's, taken back through the encoder and then cleared.
        var rowsGrad = _rows.Grad;
        for (int l = 0; l < _layers; l++)
        {
            var (keys, values) = _prefixes[l];
            for (int v = 0; v < n; v++)
                for (int j = 0; j < _kvWidth; j++)
                {
                    rowsGrad[v * width + 2 * l * _kvWidth + j] += keys.Grad[v * _kvWidth + j];
                    rowsGrad[v * width + (2 * l + 1) * _kvWidth + j] += values.Grad[v * _kvWidth + j];
                }
            keys.ZeroGrad();
            values.ZeroGrad();
        }
        if (_embedding is null) return;
        _up!.Backward(_backend!, _hidden, rowsGrad, n, _dHidden);
        EncoderActivations.TanhBackward(_hidden, _dHidden, _dHidden.Length);
        _down!.Backward(_backend!, _embedding.Data, _dHidden, n, _dEmbedding);
        System.Numerics.Tensors.TensorPrimitives.Add(_embedding.Grad, _dEmbedding, _embedding.Grad);
        _rows.ZeroGrad();
    }

    public (int[] Shape, float[] Data) PromptEmbeddingsToSave()
    {
        Forward(TunerPass.Evaluate, null);
        return (_rows.Shape, _rows.Data);
    }
}

/// <summary>
/// P-tuning's prompt encoder with the LSTM head (PEFT's PromptEncoder, encoder_reparameterization_type LSTM): the
/// trained embedding E [n × d] read as one sequence by a bidirectional torch.nn.LSTM (encoder_num_layers layers of
/// hidden size h, gates in torch's order input, forget, cell, output; encoder_dropout on every layer's output but the
/// last while training), then Linear(2h→2h) → relu → Linear(2h→d) on each position.
/// </summary>
public sealed class LstmPromptEncoderTuner : IPromptLearningTuner
{
    /// <summary>One direction of one LSTM layer: its weights and what its forward keeps for the backward.</summary>
    private sealed class Direction
    {
        public required Parameter InputWeight, HiddenWeight, InputBias, HiddenBias;
        public required bool Reverse;
        /// <summary>Per position: the gates after their activations [n × 4h] (i, f, g, o), the cell [n × h] and tanh(cell).</summary>
        public required float[] Gates, Cell, CellTanh, DGates;
    }

    private readonly IComputeBackend _backend;
    private readonly Parameter _embedding;
    private readonly Direction[][] _layers;
    private readonly EncoderLinear _first, _second;
    private readonly int _hidden;
    private readonly float _dropout;
    /// <summary>
    /// Per layer: the hidden states of both directions [n × 2h], the layer's output (those ⊙ the dropout mask, for all
    /// but the last layer while training), the mask, and dL/d(hidden states).
    /// </summary>
    private readonly float[][] _states, _outputs, _masks, _dStates;
    private readonly float[] _head, _dHead, _dEmbedding;
    private readonly Parameter _output;

    public LstmPromptEncoderTuner(int tokens, int tokenDim, int hiddenSize, int numLayers, float dropout, SeededRandom random, IComputeBackend backend)
    {
        if (numLayers < 1) throw new ArgumentException($"encoder_num_layers must be at least 1, got {numLayers}");
        _backend = backend;
        _hidden = hiddenSize;
        _dropout = dropout;
        int h = hiddenSize, n = tokens;
        _embedding = new Parameter("prompt_encoder.embedding.weight", [n, tokenDim], EncoderActivations.Normal(n * tokenDim, random));
        double bound = 1.0 / Math.Sqrt(h);
        var parameters = new List<Parameter> { _embedding };
        _layers = new Direction[numLayers][];
        for (int l = 0; l < numLayers; l++)
        {
            int input = l == 0 ? tokenDim : 2 * h;
            _layers[l] = new Direction[2];
            for (int d = 0; d < 2; d++)
            {
                string suffix = $"_l{l}" + (d == 1 ? "_reverse" : "");
                Parameter Make(string name, int[] shape) =>
                    new($"prompt_encoder.lstm_head.{name}{suffix}", shape, EncoderLinear.Uniform(shape.Aggregate(1, (a, b) => a * b), bound, random));
                var direction = new Direction
                {
                    InputWeight = Make("weight_ih", [4 * h, input]),
                    HiddenWeight = Make("weight_hh", [4 * h, h]),
                    InputBias = Make("bias_ih", [4 * h]),
                    HiddenBias = Make("bias_hh", [4 * h]),
                    Reverse = d == 1,
                    Gates = new float[n * 4 * h],
                    Cell = new float[n * h],
                    CellTanh = new float[n * h],
                    DGates = new float[n * 4 * h],
                };
                _layers[l][d] = direction;
                parameters.AddRange([direction.InputWeight, direction.HiddenWeight, direction.InputBias, direction.HiddenBias]);
            }
        }
        float[][] PerLayer() => Enumerable.Range(0, numLayers).Select(_ => new float[n * 2 * h]).ToArray();
        _states = PerLayer();
        _outputs = PerLayer();
        _masks = PerLayer();
        _dStates = PerLayer();
        _first = new EncoderLinear("prompt_encoder.mlp_head.0", 2 * h, 2 * h, random);
        _second = new EncoderLinear("prompt_encoder.mlp_head.2", 2 * h, tokenDim, random);
        _head = new float[n * 2 * h];
        _dHead = new float[n * 2 * h];
        _dEmbedding = new float[n * tokenDim];
        _output = new Parameter("prompt_embeddings", [n, tokenDim], new float[n * tokenDim]);
        parameters.AddRange([.. _first.Parameters, .. _second.Parameters]);
        Parameters = parameters;
    }

    public IReadOnlyList<Parameter> Parameters { get; }
    public Parameter? VirtualTokens => _output;
    public int Tokens => _embedding.Shape[0];
    public (Parameter Keys, Parameter Values)? KeyValuePrefix(int layer) => null;

    private static float Sigmoid(float x) => 1f / (1f + MathF.Exp(-x));

    public void Forward(TunerPass pass, SeededRandom? random)
    {
        int n = Tokens, h = _hidden;
        var input = _embedding.Data;
        for (int l = 0; l < _layers.Length; l++)
        {
            var states = _states[l];
            var output = _outputs[l];
            foreach (var d in _layers[l])
            {
                int inputWidth = d.InputWeight.Shape[1];
                // Every position's input product at once (with bias_ih), then the recurrence adds W_hh·h + bias_hh.
                EncoderLinear.Product(_backend, input, n, d.InputWeight.Data, inputWidth, 4 * h, d.InputBias.Data, d.Gates);
                int offset = d.Reverse ? h : 0;
                for (int step = 0; step < n; step++)
                {
                    int t = d.Reverse ? n - 1 - step : step, previous = d.Reverse ? t + 1 : t - 1;
                    var gates = d.Gates.AsSpan(t * 4 * h, 4 * h);
                    for (int k = 0; k < 4 * h; k++)
                    {
                        float sum = gates[k] + d.HiddenBias.Data[k];
                        if (step > 0)
                            for (int j = 0; j < h; j++) sum += d.HiddenWeight.Data[k * h + j] * states[previous * 2 * h + offset + j];
                        gates[k] = sum;
                    }
                    for (int j = 0; j < h; j++)
                    {
                        float i = Sigmoid(gates[j]), f = Sigmoid(gates[h + j]), g = MathF.Tanh(gates[2 * h + j]), o = Sigmoid(gates[3 * h + j]);
                        gates[j] = i;
                        gates[h + j] = f;
                        gates[2 * h + j] = g;
                        gates[3 * h + j] = o;
                        float cell = i * g + (step > 0 ? f * d.Cell[previous * h + j] : 0f);
                        d.Cell[t * h + j] = cell;
                        d.CellTanh[t * h + j] = MathF.Tanh(cell);
                        states[t * 2 * h + offset + j] = o * d.CellTanh[t * h + j];
                    }
                }
            }
            if (l < _layers.Length - 1 && _dropout > 0 && pass == TunerPass.Train)
            {
                if (random is null) throw new ArgumentNullException(nameof(random), "a training pass with encoder_dropout needs a random generator");
                float keep = 1f / (1f - _dropout);
                var mask = _masks[l];
                for (int i = 0; i < output.Length; i++)
                {
                    mask[i] = random.NextFloat() < _dropout ? 0f : keep;
                    output[i] = states[i] * mask[i];
                }
            }
            else
            {
                Array.Fill(_masks[l], 1f);
                states.CopyTo(output, 0);
            }
            input = output;
        }
        _first.Forward(_backend, _outputs[^1], n, _head);
        EncoderActivations.Relu(_head, _head.Length);
        _second.Forward(_backend, _head, n, _output.Data);
    }

    public void Backward()
    {
        int n = Tokens, h = _hidden;
        _second.Backward(_backend, _head, _output.Grad, n, _dHead);
        EncoderActivations.ReluBackward(_head, _dHead, _dHead.Length);
        _first.Backward(_backend, _outputs[^1], _dHead, n, _dStates[^1]);
        var dh = new float[h];
        var dc = new float[h];
        for (int l = _layers.Length - 1; l >= 0; l--)
        {
            var states = _states[l];
            var dStates = _dStates[l];
            var input = l == 0 ? _embedding.Data : _outputs[l - 1];
            var dInput = l == 0 ? _dEmbedding : _dStates[l - 1];
            for (int di = 0; di < 2; di++)
            {
                var d = _layers[l][di];
                int offset = d.Reverse ? h : 0;
                Array.Clear(dh);
                Array.Clear(dc);
                // Backward through time: positions in the reverse of the direction's reading order.
                for (int step = n - 1; step >= 0; step--)
                {
                    int t = d.Reverse ? n - 1 - step : step, previous = d.Reverse ? t + 1 : t - 1;
                    var gates = d.Gates.AsSpan(t * 4 * h, 4 * h);
                    var dGates = d.DGates.AsSpan(t * 4 * h, 4 * h);
                    for (int j = 0; j < h; j++)
                    {
                        float i = gates[j], f = gates[h + j], g = gates[2 * h + j], o = gates[3 * h + j], tanhCell = d.CellTanh[t * h + j];
                        float dHidden = dStates[t * 2 * h + offset + j] + dh[j];
                        float dCell = dHidden * o * (1f - tanhCell * tanhCell) + dc[j];
                        float cellBefore = step > 0 ? d.Cell[previous * h + j] : 0f;
                        dGates[j] = dCell * g * i * (1f - i);
                        dGates[h + j] = dCell * cellBefore * f * (1f - f);
                        dGates[2 * h + j] = dCell * i * (1f - g * g);
                        dGates[3 * h + j] = dHidden * tanhCell * o * (1f - o);
                        dc[j] = dCell * f;
                    }
                    Array.Clear(dh);
                    for (int k = 0; k < 4 * h; k++)
                    {
                        float grad = dGates[k];
                        d.HiddenBias.Grad[k] += grad;
                        if (step == 0) continue;
                        for (int j = 0; j < h; j++)
                        {
                            d.HiddenWeight.Grad[k * h + j] += grad * states[previous * 2 * h + offset + j];
                            dh[j] += grad * d.HiddenWeight.Data[k * h + j];
                        }
                    }
                }
                EncoderLinear.ProductBackward(_backend, input, d.DGates, n, d.InputWeight.Data, d.InputWeight.Shape[1], 4 * h, d.InputWeight.Grad, d.InputBias.Grad,
                    dInput, accumulate: di == 1);
            }
            // The layer below's output was scaled by its dropout mask before it became this layer's input.
            if (l > 0)
                for (int i = 0; i < dInput.Length; i++) dInput[i] *= _masks[l - 1][i];
        }
        System.Numerics.Tensors.TensorPrimitives.Add(_embedding.Grad, _dEmbedding, _embedding.Grad);
        _output.ZeroGrad();
    }

    public (int[] Shape, float[] Data) PromptEmbeddingsToSave()
    {
        Forward(TunerPass.Evaluate, null);
        return (_output.Shape, _output.Data);
    }
}
