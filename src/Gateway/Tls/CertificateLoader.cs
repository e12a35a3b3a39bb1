using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Gateway.Configuration;

namespace Gateway.Tls;

/// <summary>Loads configured certificates (PEM or PFX) into ready-to-use TLS contexts, failing with the config key.</summary>
internal static class CertificateLoader
{
    /// <summary>Every configured certificate, in order; the first that cannot be loaded throws, naming its key and file.</summary>
    public static List<LoadedCertificate> LoadAll(IReadOnlyList<CertificateOptions> certificates, Func<string, string?> getEnvironment)
    {
        var loaded = new List<LoadedCertificate>(certificates.Count);
        for (var i = 0; i < certificates.Count; i++)
        {
            loaded.Add(Load(certificates[i], i, getEnvironment));
        }
        return loaded;
    }

    public static LoadedCertificate Load(CertificateOptions options, int index, Func<string, string?> getEnvironment)
    {
        var key = $"{GatewayOptions.SectionName}:Tls:Certificates:{index}";
        var path = options.Path!;
        if (!File.Exists(path))
        {
            throw new GatewayConfigurationException($"{key}:Path", $"certificate file '{path}' does not exist");
        }
        if (options.KeyPath is { } keyPath && !File.Exists(keyPath))
        {
            throw new GatewayConfigurationException($"{key}:KeyPath", $"key file '{keyPath}' does not exist");
        }

        string? password = null;
        if (options.PasswordEnvironmentVariable is { Length: > 0 } variable)
        {
            password = getEnvironment(variable);
            if (password is null)
            {
                throw new GatewayConfigurationException($"{key}:PasswordEnvironmentVariable", $"environment variable '{variable}' is not set");
            }
        }

        try
        {
            X509Certificate2 leaf;
            X509Certificate2Collection chain;
            if (options.KeyPath is { } pemKey)
            {
                leaf = password is null
                    ? X509Certificate2.CreateFromPemFile(path, pemKey)
                    : X509Certificate2.CreateFromEncryptedPemFile(path, password, pemKey);
                chain = new X509Certificate2Collection();
                chain.ImportFromPemFile(path);
            }
            else
            {
                chain = X509CertificateLoader.LoadPkcs12CollectionFromFile(path, password, X509KeyStorageFlags.EphemeralKeySet);
                leaf = chain.FirstOrDefault(c => c.HasPrivateKey)
                    ?? throw new GatewayConfigurationException($"{key}:Path", $"'{path}' holds no certificate with a private key");
            }

            if (!leaf.HasPrivateKey)
            {
                throw new GatewayConfigurationException($"{key}:KeyPath", $"'{path}' has no private key");
            }

            var intermediates = new X509Certificate2Collection();
            foreach (var certificate in chain)
            {
                if (certificate.Thumbprint != leaf.Thumbprint)
                {
                    intermediates.Add(certificate);
                }
            }
            return new LoadedCertificate(leaf, intermediates, options.Hosts);
        }
        catch (GatewayConfigurationException)
        {
            throw;
        }
        catch (Exception ex) when (ex is CryptographicException or ArgumentException or IOException or UnauthorizedAccessException)
        {
            var what = password is null && options.KeyPath is null
                ? " (a PFX with a password needs PasswordEnvironmentVariable)"
                : string.Empty;
            // A renewal that replaced one file of the pair shows as a key that does not match: name both files.
            var withKey = options.KeyPath is { } keyFile ? $" with key '{keyFile}'" : string.Empty;
            throw new GatewayConfigurationException($"{key}:Path", $"cannot load certificate '{path}'{withKey}: {ex.Message.TrimEnd('.')}{what}", ex);
        }
    }
}

/// <summary>A server certificate, the intermediates sent with it, and the SNI names it serves.</summary>
internal sealed record LoadedCertificate(X509Certificate2 Certificate, X509Certificate2Collection Intermediates, IReadOnlyList<string> Hosts);
