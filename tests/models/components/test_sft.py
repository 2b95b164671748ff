"""GFP-GAN's channel-split spatial feature transform, CS-SFT (src/models/components/sft.py). (Where the
decoders apply it: tests/models/components/test_stylegan2.py.)"""

import pytest
import torch

from facezoo.models.components.sft import channel_split_sft


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_cs_sft_modulates_only_the_second_half_of_the_channels():
    out = torch.randn(2, 8, 5, 5)
    scale, shift = torch.randn(2, 4, 5, 5), torch.randn(2, 4, 5, 5)
    y = channel_split_sft(out, scale, shift, sft_half=True)
    assert torch.equal(y[:, :4], out[:, :4])
    torch.testing.assert_close(y[:, 4:], out[:, 4:] * scale + shift)  # out·scale, not out·(1 + scale)
    assert not torch.allclose(y[:, 4:], out[:, 4:])
    full_scale, full_shift = torch.randn(2, 8, 5, 5), torch.randn(2, 8, 5, 5)
    y = channel_split_sft(out, full_scale, full_shift, sft_half=False)
    torch.testing.assert_close(y, out * full_scale + full_shift)
    assert not torch.isclose(y[:, :4], out[:, :4]).any()
    with pytest.raises(ValueError, match="7 channels"):
        channel_split_sft(torch.randn(1, 7, 2, 2), scale, shift)
