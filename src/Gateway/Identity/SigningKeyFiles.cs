using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.IdentityModel.Tokens;

namespace Gateway.Identity;

/// <summary>
/// Signing keys from files: a PEM file holds an RSA or EC public key (a certificate's key too); any other file holds a
/// symmetric key as base64, for HS256. Loaded when the policy is loaded and again on each reload.
/// </summary>
internal static class SigningKeyFiles
{
    /// <summary>RFC 7518 §3.2: an HS256 key must be at least as long as the hash output, 256 bits.</summary>
    public const int MinSymmetricKeyBytes = 32;

    /// <summary>Loads one key file; throws <see cref="InvalidDataException"/> with a sentence for the operator.</summary>
    public static SecurityKey Load(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new InvalidDataException($"cannot read '{path}': {ex.Message}", ex);
        }
        if (text.Contains("-----BEGIN", StringComparison.Ordinal))
        {
            return LoadPem(path, text);
        }
        byte[] bytes;
        try
        {
            bytes = Convert.FromBase64String(text.Trim());
        }
        catch (FormatException ex)
        {
            throw new InvalidDataException($"'{path}' is neither a PEM public key nor a base64 symmetric key", ex);
        }
        if (bytes.Length < MinSymmetricKeyBytes)
        {
            throw new InvalidDataException($"'{path}' holds a {bytes.Length * 8}-bit symmetric key; HS256 needs at least 256 bits (RFC 7518 section 3.2)");
        }
        return new SymmetricSecurityKey(bytes);
    }

    private static SecurityKey LoadPem(string path, string pem)
    {
        if (pem.Contains("PRIVATE KEY", StringComparison.Ordinal))
        {
            // The gateway only verifies; a private key on the edge is one more place to steal it from.
            throw new InvalidDataException($"'{path}' holds a private key: give the gateway the public key only");
        }
        try
        {
            if (pem.Contains("-----BEGIN CERTIFICATE", StringComparison.Ordinal))
            {
                using var certificate = X509Certificate2.CreateFromPem(pem);
                if (certificate.GetRSAPublicKey() is { } certificateRsa)
                {
                    return new RsaSecurityKey(certificateRsa);
                }
                if (certificate.GetECDsaPublicKey() is { } certificateEc)
                {
                    return new ECDsaSecurityKey(certificateEc);
                }
                throw new InvalidDataException($"'{path}': the certificate's key is neither RSA nor EC");
            }
            if (IsEc(pem))
            {
                var ec = ECDsa.Create();
                ec.ImportFromPem(pem);
                return new ECDsaSecurityKey(ec);
            }
            var rsa = RSA.Create();
            rsa.ImportFromPem(pem);
            return new RsaSecurityKey(rsa);
        }
        catch (Exception ex) when (ex is CryptographicException or ArgumentException)
        {
            throw new InvalidDataException($"'{path}' is not a PEM RSA or EC public key: {ex.Message}", ex);
        }
    }

    /// <summary>A SubjectPublicKeyInfo names its algorithm inside; trying EC first and falling back to RSA tells them apart.</summary>
    private static bool IsEc(string pem)
    {
        using var probe = ECDsa.Create();
        try
        {
            probe.ImportFromPem(pem);
            return true;
        }
        catch (Exception ex) when (ex is CryptographicException or ArgumentException)
        {
            return false;
        }
    }
}
