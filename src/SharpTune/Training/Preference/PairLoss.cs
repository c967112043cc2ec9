namespace SharpTune.Training.Preference;

/// <summary>
/// One pair's loss, its derivatives with respect to the policy's chosen and rejected log-probs (the values the loss
/// reads: sums, or per-token averages when <see cref="PairLoss.AveragesLogProbs"/>), and the rewards LLaMA-Factory logs.
/// </summary>
public readonly record struct PairTerms(double Loss, double DChosen, double DRejected, double RewardChosen, double RewardRejected);

/// <summary>
/// The DPO family's pair losses (<c>pref_loss</c>), each as written in TRL's dpo_loss and LLaMA-Factory's
/// odds_ratio_loss/simpo_loss, with Δ = (π_c − π_r) − (ρ_c − ρ_r). LLaMA-Factory on current TRL computes sigmoid for
/// hinge and ipo; these compute what their names say.
/// </summary>
public abstract class PairLoss(double beta)
{
    public static IReadOnlyList<string> Names { get; } = ["sigmoid", "hinge", "ipo", "orpo", "simpo"];

    /// <summary>The pref_loss value.</summary>
    public abstract string Name { get; }

    /// <summary>pref_beta.</summary>
    public double Beta { get; } = beta;

    /// <summary>Whether the loss reads per-token averages of the log-probs (ipo, orpo, simpo) rather than their sums.</summary>
    public virtual bool AveragesLogProbs => false;

    /// <summary>Whether the loss needs a reference model (orpo and simpo do not).</summary>
    public virtual bool NeedsReference => true;

    /// <summary>The pair's loss; the reference values are ignored by the losses without a reference.</summary>
    public abstract PairTerms Compute(double policyChosen, double policyRejected, double referenceChosen, double referenceRejected);

    /// <summary>
    /// The loss named by <paramref name="name"/>; a setting the loss does not read (label smoothing but for sigmoid)
    /// is refused naming its key rather than ignored.
    /// </summary>
    public static PairLoss Create(string name, double beta, double labelSmoothing = 0, double simpoGamma = 0.5)
    {
        if (!(beta > 0) || !double.IsFinite(beta)) throw new ArgumentException($"pref_beta must be a positive number, got {beta}");
        if (labelSmoothing != 0 && name != "sigmoid")
            throw new ArgumentException($"dpo_label_smoothing applies to pref_loss sigmoid only, got {labelSmoothing} with pref_loss {name}");
        if (!(labelSmoothing is >= 0 and < 0.5))
            throw new ArgumentException($"dpo_label_smoothing must be in [0, 0.5), got {labelSmoothing}");
        return name switch
        {
            "sigmoid" => new SigmoidPairLoss(beta, labelSmoothing),
            "hinge" => new HingePairLoss(beta),
            "ipo" => new IpoPairLoss(beta),
            "orpo" => new OrpoPairLoss(beta),
            "simpo" => double.IsFinite(simpoGamma) ? new SimpoPairLoss(beta, simpoGamma) : throw new ArgumentException($"simpo_gamma must be a number, got {simpoGamma}"),
            _ => throw new ArgumentException($"pref_loss must be one of {string.Join(", ", Names)}, got '{name}'"),
        };
    }

    /// <summary>log σ(x), without overflow for large |x|.</summary>
    internal static double LogSigmoid(double x) => x >= 0 ? -double.LogP1(Math.Exp(-x)) : x - double.LogP1(Math.Exp(x));

    internal static double Sigmoid(double x) => x >= 0 ? 1 / (1 + Math.Exp(-x)) : Math.Exp(x) / (1 + Math.Exp(x));

    /// <summary>The DPO rewards β·(π − ρ).</summary>
    protected PairTerms WithReferenceRewards(double loss, double dDelta, double pc, double pr, double rc, double rr) =>
        new(loss, dDelta, -dDelta, Beta * (pc - rc), Beta * (pr - rr));
}

/// <summary>sigmoid: −(1−ε)·logσ(βΔ) − ε·logσ(−βΔ), ε = dpo_label_smoothing (cDPO).</summary>
public sealed class SigmoidPairLoss(double beta, double labelSmoothing) : PairLoss(beta)
{
    public override string Name => "sigmoid";

    public override PairTerms Compute(double pc, double pr, double rc, double rr)
    {
        double z = Beta * (pc - pr - (rc - rr)), e = labelSmoothing;
        double loss = -(1 - e) * LogSigmoid(z) - e * LogSigmoid(-z);
        double dDelta = Beta * (-(1 - e) * Sigmoid(-z) + e * Sigmoid(z));
        return WithReferenceRewards(loss, dDelta, pc, pr, rc, rr);
    }
}

/// <summary>hinge (SLiC): relu(1 − βΔ).</summary>
public sealed class HingePairLoss(double beta) : PairLoss(beta)
{
    public override string Name => "hinge";

    public override PairTerms Compute(double pc, double pr, double rc, double rr)
    {
        double margin = 1 - Beta * (pc - pr - (rc - rr));
        return WithReferenceRewards(Math.Max(0, margin), margin > 0 ? -Beta : 0, pc, pr, rc, rr);
    }
}

/// <summary>ipo: (Δ − 1/(2β))² on per-token averages.</summary>
public sealed class IpoPairLoss(double beta) : PairLoss(beta)
{
    public override string Name => "ipo";

    public override bool AveragesLogProbs => true;

    public override PairTerms Compute(double pc, double pr, double rc, double rr)
    {
        double d = pc - pr - (rc - rr) - 1 / (2 * Beta);
        return WithReferenceRewards(d * d, 2 * d, pc, pr, rc, rr);
    }
}

/// <summary>
/// orpo, without a reference: −a_c + β·(−logσ(log_odds)), log_odds = (a_c − a_r) − (log1p(−e^{a_c}) − log1p(−e^{a_r}));
/// rewards β·a.
/// </summary>
public sealed class OrpoPairLoss(double beta) : PairLoss(beta)
{
    public override string Name => "orpo";

    public override bool AveragesLogProbs => true;
    public override bool NeedsReference => false;

    public override PairTerms Compute(double ac, double ar, double rc, double rr)
    {
        double logOdds = ac - ar - (double.LogP1(-Math.Exp(ac)) - double.LogP1(-Math.Exp(ar)));
        double loss = -ac - Beta * LogSigmoid(logOdds);
        // d log_odds/d a_c = 1/(1 − e^{a_c}); d log_odds/d a_r = −1/(1 − e^{a_r}); d(−logσ(x))/dx = −σ(−x).
        double dOdds = -Beta * Sigmoid(-logOdds);
        return new PairTerms(loss, -1 + dOdds / -double.ExpM1(ac), -dOdds / -double.ExpM1(ar), Beta * ac, Beta * ar);
    }
}

/// <summary>simpo, without a reference: −logσ(β·((a_c − a_r) − γ/β)), γ = simpo_gamma; rewards β·a.</summary>
public sealed class SimpoPairLoss(double beta, double gamma) : PairLoss(beta)
{
    public override string Name => "simpo";

    public override bool AveragesLogProbs => true;
    public override bool NeedsReference => false;

    public override PairTerms Compute(double ac, double ar, double rc, double rr)
    {
        double z = Beta * (ac - ar - gamma / Beta);
        double d = -Beta * Sigmoid(-z);
        return new PairTerms(-LogSigmoid(z), d, -d, Beta * ac, Beta * ar);
    }
}
