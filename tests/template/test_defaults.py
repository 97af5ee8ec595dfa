"""The template's default deployment reads the key from Secrets Manager's API itself; the AWS Parameters and
Secrets Lambda Extension, when chosen, comes from the layer ARN AWS publishes in Parameter Store: nobody has an
ARN to look up."""

from tests.templates import raw_template

# AWS's public parameter for the latest Arm64 layer (Systems Manager User Guide, "AWS Parameters and Secrets
# Lambda Extension ARNs").
PUBLISHED_ARM64_LAYER = "/aws/service/aws-parameters-and-secrets-lambda-extension/arm64/latest"


def test_the_default_reader_is_direct_and_the_extension_comes_from_awss_published_parameter() -> None:
    # Given the template
    parameters = raw_template()["Parameters"]

    # When its defaults are read
    reader, layer = parameters["SecretsReader"], parameters["SecretsExtensionLayerArn"]

    # Then the function's own signed request is the default ("sdk", its earlier name, still deploys), and the
    # extension's layer, when chosen, is resolved at deploy time from AWS's parameter
    assert reader["Default"] == "direct"
    assert sorted(reader["AllowedValues"]) == ["direct", "extension", "sdk"]
    assert layer["Type"] == "AWS::SSM::Parameter::Value<String>"
    assert layer["Default"] == PUBLISHED_ARM64_LAYER


def test_the_published_layer_matches_the_functions_architecture() -> None:
    # Given the function's architecture and layers
    loaded = raw_template()
    architectures = loaded["Globals"]["Function"]["Architectures"]
    layers = loaded["Resources"]["TokenVendingFunction"]["Properties"]["Layers"]

    # When the extension's layer is looked for
    attached = [layer for layer in layers if "Fn::If" in layer and layer["Fn::If"][0] == "UseSecretsExtension"]

    # Then it is attached when the extension reads the key, and is the build for the same architecture
    assert attached == [
        {"Fn::If": ["UseSecretsExtension", {"Ref": "SecretsExtensionLayerArn"}, {"Ref": "AWS::NoValue"}]}
    ]
    assert loaded["Conditions"]["UseSecretsExtension"] == {"Fn::Equals": [{"Ref": "SecretsReader"}, "extension"]}
    assert architectures == ["arm64"]
    assert "/arm64/" in loaded["Parameters"]["SecretsExtensionLayerArn"]["Default"]
