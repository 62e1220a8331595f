using System.Buffers;
using System.IO.Hashing;
using System.Text;
using Lepton.Shared.Policies;
using Lepton.Shared.Registry;

namespace Lepton.GpuWorker.Routing;

/// <summary>
/// Stable buckets for sticky keys: XxHash3 (64-bit, seed 0) of the UTF-8 bytes of
/// <c>model</c>, a NUL byte and the key, taken as an unsigned integer modulo 10,000. Every replica
/// and restart computes the same bucket, so a caller maps to the same version everywhere.
/// </summary>
public static class StickyBucket
{
    public const int Buckets = Policy.BasisPoints;

    public static int Of(string model, string key)
    {
        var length = Encoding.UTF8.GetByteCount(model) + 1 + Encoding.UTF8.GetByteCount(key);
        byte[]? rented = null;
        var buffer = length <= 512 ? stackalloc byte[length] : (rented = ArrayPool<byte>.Shared.Rent(length)).AsSpan(0, length);
        try
        {
            var written = Encoding.UTF8.GetBytes(model, buffer);
            buffer[written] = 0;
            Encoding.UTF8.GetBytes(key, buffer[(written + 1)..]);
            return (int)(XxHash3.HashToUInt64(buffer) % Buckets);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }
}

/// <summary>
/// The routes a replica actually applies right now: only versions that are ready here.
/// <see cref="Pick"/> is a pure function of the table and a bucket in 0..9999: the candidate when
/// the bucket is below its weight, else production. A sticky caller's bucket is fixed, and a bucket
/// below the old weight is below any larger one, so as the weight only grows, a caller moved to the
/// candidate stays there.
/// </summary>
public sealed record RouteTable(
    string Model,
    string? Production,
    string? Candidate = null,
    int CandidateWeightBp = 0,
    string? Shadow = null,
    int ShadowFractionBp = 0,
    string? StickyHeader = null,
    long Generation = 0)
{
    /// <summary>The version that serves a request in <paramref name="bucket"/>.</summary>
    public string? Pick(int bucket) =>
        Candidate is not null && CandidateWeightBp > 0 && bucket < CandidateWeightBp ? Candidate : Production;

    /// <summary>The shadow version to mirror a request to when <paramref name="draw"/> (0..9999) samples it.</summary>
    public string? Mirrors(int draw, string served) =>
        Shadow is null || Shadow == served || draw >= ShadowFractionBp ? null : Shadow;

    /// <summary>
    /// What to apply given the stored routes and which versions are ready here: a new production
    /// version serves only once warm (the previous one bridges), a candidate that is not warm gets
    /// no share, and without a production version the candidate takes everything.
    /// </summary>
    public static RouteTable Effective(Routes stored, Func<string, bool> isReady, RouteTable? previous)
    {
        var production = stored.Production is { } p && isReady(p) ? p : null;
        if (production is null && previous?.Production is { } old && isReady(old))
        {
            production = old;
        }
        string? candidate = null;
        var weight = 0;
        if (stored.Candidate is { } c && stored.CandidateWeightBp > 0 && isReady(c))
        {
            candidate = c;
            weight = production is null ? StickyBucket.Buckets : stored.CandidateWeightBp;
        }
        string? shadow = null;
        var fraction = 0;
        if (stored.Shadow is { } s && stored.ShadowFractionBp > 0 && isReady(s))
        {
            shadow = s;
            fraction = stored.ShadowFractionBp;
        }
        return new RouteTable(stored.Model, production, candidate, weight, shadow, fraction, stored.StickyHeader, stored.Generation);
    }
}
